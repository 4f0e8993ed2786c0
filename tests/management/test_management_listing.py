"""The list helper every management listing shares: pagination, name filter, sort, columns."""
import pytest

VHOST = "listing"


@pytest.fixture(scope="module")
def listing_vhost(mbroker):
    def make():
        vh = mbroker.broker.add_vhost(VHOST)
        for i in range(25):
            q, _ = vh.declare_queue(f"lq-{i:02d}", None, arguments={"x-max-length": 100 - i})
        vh.declare_queue("other-a", None)
        vh.declare_queue("OTHER-b", None)
    mbroker.call(make)
    return VHOST


def names(items):
    return [x["name"] for x in items]


def test_without_page_a_plain_array_sorted_by_vhost_and_name(api, listing_vhost):
    status, _, items = api.get(f"/api/queues/{listing_vhost}")
    assert status == 200 and isinstance(items, list) and len(items) == 27
    assert names(items) == sorted(names(items))


def test_a_page_object(api, listing_vhost):
    status, _, page = api.get(f"/api/queues/{listing_vhost}?page=2&page_size=10")
    assert status == 200
    assert list(page) == ["filtered_count", "item_count", "items", "page", "page_count", "page_size", "total_count"]
    assert (page["filtered_count"], page["item_count"], page["page"], page["page_count"], page["page_size"],
            page["total_count"]) == (27, 10, 2, 3, 10, 27)
    # vhost then name: "OTHER-b" < "lq-00" ... "lq-24" < "other-a"
    assert names(page["items"]) == [f"lq-{i:02d}" for i in range(9, 19)]
    last = api.get(f"/api/queues/{listing_vhost}?page=3&page_size=10")[2]
    assert last["item_count"] == 7
    assert api.get(f"/api/queues/{listing_vhost}?page=1")[2]["page_size"] == 100


def test_name_filter_substring_and_regex(api, listing_vhost):
    page = api.get(f"/api/queues/{listing_vhost}?page=1&name=other")[2]
    assert names(page["items"]) == ["OTHER-b", "other-a"] and page["filtered_count"] == 2
    assert page["total_count"] == 27
    page = api.get(f"/api/queues/{listing_vhost}?page=1&name=%5Elq-0%5B12%5D&use_regex=true")[2]
    assert names(page["items"]) == ["lq-01", "lq-02"] and page["filtered_count"] == 2
    page = api.get(f"/api/queues/{listing_vhost}?page=1&name=%5Elq-2&use_regex=true")[2]
    assert names(page["items"]) == ["lq-20", "lq-21", "lq-22", "lq-23", "lq-24"]
    assert api.get(f"/api/queues/{listing_vhost}?page=1&name=%5B&use_regex=true")[0] == 400


def test_sort_sort_reverse_and_dotted_sort_keys(api, listing_vhost):
    items = api.get(f"/api/queues/{listing_vhost}?sort=name&sort_reverse=true")[2]
    assert names(items) == sorted(names(items), reverse=True)
    items = api.get(f"/api/queues/{listing_vhost}?page=1&page_size=3&sort=arguments.x-max-length")[2]["items"]
    assert [x["arguments"].get("x-max-length") for x in items] == [None, None, 76]  # missing values first


def test_columns_keep_only_those_keys_nested_too(api, listing_vhost):
    items = api.get(f"/api/queues/{listing_vhost}?columns=name,arguments.x-max-length&sort=name")[2]
    assert items[0] == {"name": "OTHER-b"}
    assert items[1] == {"name": "lq-00", "arguments": {"x-max-length": 100}}
    page = api.get(f"/api/queues/{listing_vhost}?page=1&page_size=1&columns=name")[2]
    assert page["items"] == [{"name": "OTHER-b"}]


@pytest.mark.parametrize("query", ["page=0", "page=x", "page=1&page_size=501", "page=1&page_size=0",
                                   "page=4&page_size=10"])
def test_invalid_pagination_is_400(api, listing_vhost, query):
    status, _, body = api.get(f"/api/queues/{listing_vhost}?{query}")
    assert status == 400
    assert body["error"] == ("page_out_of_range" if query.startswith("page=4") else
                             "bad_request" if query == "page=x" else "invalid_pagination_parameters")


def test_every_listing_paginates(api, listing_vhost):
    for path in ("/api/queues", "/api/exchanges", "/api/bindings", "/api/vhosts", "/api/connections",
                 "/api/nodes", f"/api/exchanges/{listing_vhost}", f"/api/bindings/{listing_vhost}"):
        status, _, page = api.get(path + "?page=1&page_size=500")
        assert status == 200 and "items" in page and page["item_count"] == len(page["items"]), path


def test_ten_thousand_queues_list_page_by_page(api, mbroker):
    def make():
        vh = mbroker.broker.add_vhost("many")
        for i in range(10_000):
            vh.declare_queue(f"q{i:05d}", None)
    mbroker.call(make)
    page = api.get("/api/queues/many?page=20&page_size=500")[2]
    assert (page["total_count"], page["page_count"], page["item_count"]) == (10_000, 20, 500)
    assert page["items"][-1]["name"] == "q09999"
    everything = api.get("/api/queues/many?columns=name")[2]
    assert len(everything) == 10_000
    assert api.get("/api/queues?page=1&page_size=1")[2]["total_count"] >= 10_000
