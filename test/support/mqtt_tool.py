"""A tiny MQTT client over TLS for the client namespace (paho, from the
test venv, so it does not depend on this machine's mosquitto-clients, which
the integration suite removes and reinstalls).

    python -m test.support.mqtt_tool pub HOST CAFILE TOPIC < lines
    python -m test.support.mqtt_tool sub HOST CAFILE FILTER COUNT TIMEOUT [CLIENT_ID]

User and password come from MQTT_USER / MQTT_PASSWORD. QoS 1 both ways
(MQTT_QOS=2: QoS 2 both ways; MQTT_SHOW_QOS=1: ``sub`` puts "q<qos> ", the
QoS a message arrived with, before each line). With MQTT_STAMP=1, ``sub`` puts the wall-clock time of arrival (epoch
seconds, ms) before each line: "<time> <topic> <payload>".
``sub`` prints "SUBSCRIBED" on stderr once the broker granted the
subscription, then "<topic> <payload>" per message on stdout; it exits
after COUNT messages (COUNT 0: once subscribed) or TIMEOUT seconds. With CLIENT_ID the session is
persistent (clean session false).
"""
import os
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt

PORT = int(os.environ.get("MQTT_PORT", "8883"))
QOS = int(os.environ.get("MQTT_QOS", "1"))


def client(host, cafile, client_id="", clean=True):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    c.tls_set(ca_certs=cafile, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.username_pw_set(os.environ["MQTT_USER"], os.environ["MQTT_PASSWORD"])
    c.max_inflight_messages_set(50)
    return c


def pub(host, cafile, topic):
    c = client(host, cafile)
    c.connect(host, PORT)
    c.loop_start()
    infos = [c.publish(topic, line.rstrip("\n"), qos=QOS) for line in sys.stdin if line.strip()]
    for info in infos:
        info.wait_for_publish(60)
        if not info.is_published():
            sys.exit(f"not acknowledged: mid {info.mid}")
    c.disconnect()
    c.loop_stop()


def sub(host, cafile, topic, count, timeout, client_id=""):
    c = client(host, cafile, client_id, clean=not client_id)
    got = []
    done = threading.Event()

    def on_connect(cl, _u, _f, reason, _p):
        if reason.is_failure:
            sys.stderr.write(f"CONNACK {reason}\n")
            done.set()
            return
        cl.subscribe(topic, qos=QOS)

    def on_subscribe(*_):
        sys.stderr.write("SUBSCRIBED\n")
        sys.stderr.flush()
        if count == 0:  # only make the (persistent) subscription
            done.set()

    def on_message(_c, _u, msg):
        got.append(f"{msg.topic} {msg.payload.decode()}")
        stamp = f"{time.time():.3f} " if os.environ.get("MQTT_STAMP") == "1" else ""
        if os.environ.get("MQTT_SHOW_QOS") == "1":
            stamp += f"q{msg.qos} "
        sys.stdout.write(stamp + got[-1] + "\n")
        sys.stdout.flush()
        if len(got) >= count:
            done.set()

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.connect(host, PORT)
    c.loop_start()
    done.wait(timeout)
    time.sleep(0.2)  # let the last PUBACKs go out before DISCONNECT
    c.disconnect()
    c.loop_stop()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "pub":
        pub(*args)
    else:
        sub(args[0], args[1], args[2], int(args[3]), float(args[4]), *(args[5:6]))
