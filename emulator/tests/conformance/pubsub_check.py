"""Real third-party Pub/Sub API client check against the emulator.

Uses grpcio (stubs generated at run time with grpcio-tools from the real pubsub_api.proto),
the `avro` package from PyPI to decode payloads with the schema GetSchema returns, and
`bitstring` to decode changedFields the way Salesforce's ChangeEventHeaderUtility.py does,
like Salesforce's published Python example. Environment: PUBSUB_ADDR (host:port),
INSTANCE_URL, ACCESS_TOKEN, TENANT_ID, PROTO_DIR, and EXPECT_IDS (comma-separated record ids
of the Account changes the Rust test made: create, update, create).
Prints "all pubsub checks passed" on success.
"""

import io
import os
import sys
import tempfile

import avro.io
import avro.schema
import grpc
from bitstring import BitArray
from grpc_tools import protoc


def generate_stubs(proto_dir):
    out = tempfile.mkdtemp(prefix="pubsub-stubs-")
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
                      os.path.join(proto_dir, "pubsub_api.proto")])
    if rc != 0:
        sys.exit(f"protoc failed: {rc}")
    sys.path.insert(0, out)
    import pubsub_api_pb2 as pb2  # noqa: E402
    import pubsub_api_pb2_grpc as pb2_grpc  # noqa: E402
    return pb2, pb2_grpc


def value_schema(field_schema):
    """The value type of an optional ["null", T] union."""
    if field_schema.type == "union":
        schemas = field_schema.schemas
        if len(schemas) == 2 and schemas[0].type == "null":
            return schemas[1]
    return field_schema


def names_from_bitmap(bitmap, schema):
    """Bit string reversed, as ChangeEventHeaderUtility.py reads it."""
    bits = BitArray(hex=bitmap[2:]).bin[::-1]
    fields = list(schema.fields)
    return [fields[i].name for i, b in enumerate(bits) if b == "1"]


def process_bitmap(schema, bitmaps):
    out = []
    for b in bitmaps:
        if b.startswith("0x"):
            out += names_from_bitmap(b, schema)
        elif "-" in b:
            pos, hexbits = b.split("-", 1)
            parent = schema.fields[int(pos)]
            child = value_schema(parent.type)
            out += [parent.name + "." + n for n in names_from_bitmap(hexbits, child)]
    return out


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


def main():
    pb2, pb2_grpc = generate_stubs(os.environ["PROTO_DIR"])
    metadata = (("accesstoken", os.environ["ACCESS_TOKEN"]),
                ("instanceurl", os.environ["INSTANCE_URL"]),
                ("tenantid", os.environ["TENANT_ID"]))
    expect = os.environ["EXPECT_IDS"].split(",")
    channel = grpc.insecure_channel(os.environ["PUBSUB_ADDR"])
    stub = pb2_grpc.PubSubStub(channel)
    topic = "/data/AccountChangeEvent"

    info = stub.GetTopic(pb2.TopicRequest(topic_name=topic), metadata=metadata)
    check(info.can_subscribe and not info.can_publish, "GetTopic: subscribe only")
    schema_json = stub.GetSchema(pb2.SchemaRequest(schema_id=info.schema_id), metadata=metadata).schema_json
    schema = avro.schema.parse(schema_json)
    check(schema.name == "AccountChangeEvent", "GetSchema: the AccountChangeEvent schema parses in avro")

    try:
        stub.GetTopic(pb2.TopicRequest(topic_name=topic), metadata=(("accesstoken", "bad"),) + metadata[1:])
        check(False, "a bad token is refused")
    except grpc.RpcError as e:
        codes = dict(e.trailing_metadata() or ())
        check(e.code() == grpc.StatusCode.UNAUTHENTICATED
              and codes.get("error-code") == "sfdc.platform.eventbus.grpc.service.auth.error",
              "a bad token is UNAUTHENTICATED with the auth error-code trailer")

    def subscribe(preset, replay_id, n):
        def requests():
            yield pb2.FetchRequest(topic_name=topic, replay_preset=preset, replay_id=replay_id, num_requested=n)
        return stub.Subscribe(requests(), metadata=metadata)

    def take(stream, n):
        got = []
        for resp in stream:
            for ev in resp.events:
                got.append(ev)
            if len(got) >= n:
                stream.cancel()
                return got
        return got

    events = take(subscribe(pb2.ReplayPreset.EARLIEST, b"", 3), 3)
    decoded = []
    for ev in events:
        check(ev.event.schema_id == info.schema_id, "event schema id is the topic's")
        reader = avro.io.DatumReader(schema)
        decoded.append(reader.read(avro.io.BinaryDecoder(io.BytesIO(ev.event.payload))))
    header = [d["ChangeEventHeader"] for d in decoded]
    check([h["changeType"] for h in header] == ["CREATE", "UPDATE", "CREATE"], "change types CREATE, UPDATE, CREATE")
    check([h["recordIds"][0] for h in header] == expect, "record ids in commit order")
    check(decoded[0]["Name"] == "PyOne" and decoded[0]["BillingAddress"]["City"] == "Paris", "CREATE carries the values")
    changed = process_bitmap(schema, list(header[1]["changedFields"]))
    check("Phone" in changed and "LastModifiedDate" in changed and "BillingAddress.City" in changed,
          f"changedFields decode to {changed}")
    check(decoded[1]["Name"] is None and decoded[1]["Phone"] == "555", "UPDATE carries only changed fields")
    check(isinstance(decoded[0]["CreatedDate"], int), "datetime is epoch ms")

    rest = take(subscribe(pb2.ReplayPreset.CUSTOM, events[0].replay_id, 2), 2)
    check([e.replay_id for e in rest] == [e.replay_id for e in events[1:]], "CUSTOM resumes after the replay id")

    try:
        take(subscribe(pb2.ReplayPreset.CUSTOM, b"\x01\x02", 1), 1)
        check(False, "a corrupted replay id is refused")
    except grpc.RpcError as e:
        codes = dict(e.trailing_metadata() or ())
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT
              and codes.get("error-code") == "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
              and "rpcId:" in e.details(),
              "a corrupted replay id is INVALID_ARGUMENT with the replayid.corrupted trailer")
    print("all pubsub checks passed")


if __name__ == "__main__":
    main()
