/* The "Publish message" form of the queue and exchange pages.
 *
 * Theory of operation: POST /api/exchanges/{vhost}/{exchange}/publish with {routing_key, properties,
 * payload, payload_encoding}, as RabbitMQ's UI sends it; the broker publishes mandatory and in
 * confirm mode and answers {routed}. The queue page publishes through amq.default with the queue's
 * name as routing key. Headers are typed key/value rows; properties are key/value rows whose numeric
 * ones (priority, timestamp) are sent as numbers; the delivery mode is a select.
 */
import {el, field, input, select, textarea, makeForm, kvEditor} from './objects.js';

const NUMERIC = new Set(['priority', 'timestamp', 'delivery_mode']);
const PROPERTY_NAMES = ['content_type', 'content_encoding', 'priority', 'correlation_id', 'reply_to',
  'expiration', 'message_id', 'timestamp', 'type', 'user_id', 'app_id', 'cluster_id'];

export function publishForm(ctx, vhost, exchange, {routingKey} = {}) {
  const key = routingKey === undefined ? input('routing_key', {autocomplete: 'off'}) : null;
  const mode = select('delivery_mode', [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], '1');
  const headers = kvEditor('Headers');
  const props = kvEditor('Properties', {types: false});
  const payload = textarea('payload', {rows: 5});
  const encoding = select('payload_encoding', [['string', 'String (default)'], ['base64', 'Base64']], 'string');
  const hint = el('p', {class: 'obj-hint'}, `Properties: ${PROPERTY_NAMES.join(', ')}.`);
  const f = makeForm('Publish message', [
    key ? field('Routing key', key) : null,
    field('Delivery mode', mode),
    headers,
    props, hint,
    field('Payload', payload),
    field('Payload encoding', encoding),
  ].filter(Boolean), 'Publish message', async () => {
    const properties = {delivery_mode: Number(mode.value)};
    const h = headers.value();
    if (Object.keys(h).length) properties.headers = h;
    for (const [k, v] of Object.entries(props.value())) {
      if (NUMERIC.has(k)) {
        const x = Number(v);
        if (v.trim() === '' || !Number.isInteger(x)) throw new Error(`${k}: "${v}" is not an integer`);
        properties[k] = x;
      } else {
        properties[k] = v;
      }
    }
    const body = {
      properties,
      routing_key: key ? key.value : routingKey,
      payload: payload.value,
      payload_encoding: encoding.value,
    };
    const r = await ctx.api.post(`/exchanges/${encodeURIComponent(vhost)}/${encodeURIComponent(exchange)}/publish`, body);
    if (r && r.routed) return 'Message published.';
    throw new Error('Message published, but not routed.');
  });
  return f;
}
