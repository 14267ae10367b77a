"""Small paho-mqtt helpers (paho 2.x API) for tests against a real broker."""
import queue
import ssl
import threading

import paho.mqtt.client as mqtt


class Client:
    """A connected paho client that records messages and disconnects."""

    def __init__(self, port, username=None, password=None, client_id="", clean=True,
                 cafile=None, host="127.0.0.1", keepalive=30):
        self.messages = queue.Queue()
        self.disconnected = threading.Event()
        self.connected = threading.Event()
        self.reason = None  # the CONNACK's reason code
        self.disconnect_reason = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean if client_id else True)
        if username is not None:
            self.client.username_pw_set(username, password)
        if cafile:
            self.client.tls_set(ca_certs=cafile, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_message = lambda c, u, msg: self.messages.put((msg.topic, msg.payload, msg.qos))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.host, self.port, self.keepalive = host, port, keepalive

    def _on_connect(self, client, userdata, flags, reason, props):
        self.reason = reason
        if not reason.is_failure:
            self.connected.set()
        else:
            self.disconnected.set()

    def _on_disconnect(self, client, userdata, flags, reason, props):
        self.disconnect_reason = reason
        self.disconnected.set()

    def connect(self, timeout=10):
        """True when the broker accepted us; False when it refused."""
        self.client.connect(self.host, self.port, self.keepalive)
        self.client.loop_start()
        for _ in range(int(timeout * 10)):
            if self.connected.is_set():
                return True
            if self.disconnected.is_set():
                self.close()
                return False
            self.connected.wait(0.1)
        self.close()
        raise TimeoutError(f"no CONNACK from {self.host}:{self.port}")

    def subscribe(self, topic, qos=1):
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos)
        assert done.wait(10), f"no SUBACK for {topic}"

    def publish(self, topic, payload, qos=1):
        info = self.client.publish(topic, payload, qos)
        info.wait_for_publish(10)
        return info

    def get(self, timeout=5):
        return self.messages.get(timeout=timeout)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()
