"""A TCP proxy for link-failure tests: forwards 127.0.0.1:<port> to a target, and ``cut()`` drops every
connection through it at once (both sides see the TCP connection end), as a broken network link does;
``stall()`` stops forwarding until ``resume()``, as a link far slower than its traffic."""
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs: list = []
        self.cuts = 0
        self.refusing = False  # while set, new connections are closed at once
        self.closed = False
        self.flowing = threading.Event()  # cleared by stall(): nothing is forwarded until resume()
        self.flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, vhost: str = "%2F") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = (client, upstream)
            with self.lock:
                self.pairs.append(pair)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair) -> None:
        try:
            while True:
                self.flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self.flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        self._drop(pair)

    def _drop(self, pair) -> None:
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def connections(self) -> int:
        with self.lock:
            return len(self.pairs)

    def cut(self) -> int:
        """Drop every connection now; returns how many were dropped."""
        with self.lock:
            pairs = list(self.pairs)
        for p in pairs:
            self._drop(p)
        self.cuts += 1
        return len(pairs)

    def stall(self) -> None:
        """Stop forwarding (the connections stay open, the senders' buffers fill): a link slower than its
        source."""
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.flowing.set()
        self.closed = True
        self.listener.close()
        self.cut()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
