"""Print one device's readings as they arrive: python print_readings.py DEVICE [HOST [PORT [N]]]

A third-party subscriber in plain paho-mqtt (pip install "paho-mqtt>=2"): batches on
devices/DEVICE/events, zlib-compressed when the user property content-encoding says so
(docs/PROTOCOL.md; schema in docs/schema/). Stops after N readings when N is given.
"""

import json
import sys
import zlib

import paho.mqtt.client as mqtt

device, host, port = sys.argv[1], (sys.argv[2:3] or ["localhost"])[0], int((sys.argv[3:4] or [1883])[0])
left = int(sys.argv[4]) if len(sys.argv) > 4 else -1


def on_message(client, userdata, msg):
    global left
    payload = msg.payload
    if dict(getattr(msg.properties, "UserProperty", None) or []).get("content-encoding") == "zlib":
        payload = zlib.decompress(payload)
    for event in json.loads(payload)["events"]:
        if event["kind"] == "reading" and left != 0:
            values = ", ".join(f"{q}={v}" for q, v in event["data"].items() if q != "cal")
            print(f"{event['ts']} {event['sensor']}: {values}", flush=True)
            left -= 1
    if left == 0:
        client.disconnect()


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"devices/{device}/events", qos=1)
client.on_message = on_message
client.connect(host, port)
client.loop_forever()
