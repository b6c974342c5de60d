//! Shared helpers for the Pub/Sub tests: a tonic client generated from the same proto (the
//! emulator exports it), authenticated metadata, a Subscribe stream driven by hand, and an
//! Avro decoder that turns payloads into JSON and bitmaps into field names.
#![allow(dead_code)]

use std::time::Duration;

use apache_avro::types::Value as Avro;
use pgforce_emulator::pubsub::proto::pub_sub_client::PubSubClient;
use pgforce_emulator::pubsub::proto::{
    FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, TopicRequest,
};
use pgforce_emulator::EmulatorConfig;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

#[path = "../emulator_support/mod.rs"]
mod emulator_support;
#[allow(unused_imports)]
pub use emulator_support::{Emu, Resp, V};

/// Safety net for awaits that should complete (not a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// An emulator with a short keepalive, and a connected Pub/Sub client.
pub struct PubSubEnv {
    /// The emulator and its REST helpers.
    pub emu: Emu,
    /// The gRPC client.
    pub client: PubSubClient<Channel>,
}

/// The default config with a short keepalive.
pub fn config() -> EmulatorConfig {
    let mut c = EmulatorConfig::default();
    c.pubsub.keepalive_ms = 100;
    c
}

impl PubSubEnv {
    /// Starts with [`config`].
    pub async fn start() -> PubSubEnv {
        PubSubEnv::start_with(config()).await
    }

    /// Starts with `config`.
    pub async fn start_with(config: EmulatorConfig) -> PubSubEnv {
        let emu = Emu::start_with(config).await;
        let client = PubSubClient::connect(emu.handle.pubsub_url())
            .await
            .expect("connect to the pub/sub port");
        PubSubEnv { emu, client }
    }

    /// Calls an admin route (`/__emulator/...`); returns status and JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .emu
            .client
            .request(method, format!("{}{path}", self.emu.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A request carrying the three auth metadata entries.
    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        let md = r.metadata_mut();
        md.insert("accesstoken", self.emu.token.parse().unwrap());
        md.insert("instanceurl", self.emu.base.parse().unwrap());
        md.insert("tenantid", self.emu.handle.org_id().parse().unwrap());
        r
    }

    /// GetTopic's schema id for `topic`.
    pub async fn schema_id(&self, topic: &str) -> String {
        let mut c = self.client.clone();
        c.get_topic(self.req(TopicRequest {
            topic_name: topic.into(),
        }))
        .await
        .expect("get topic")
        .into_inner()
        .schema_id
    }

    /// The parsed schema with this id.
    pub async fn schema(&self, id: &str) -> apache_avro::Schema {
        let mut c = self.client.clone();
        let info = c
            .get_schema(self.req(SchemaRequest {
                schema_id: id.into(),
            }))
            .await
            .expect("get schema")
            .into_inner();
        apache_avro::Schema::parse_str(&info.schema_json).expect("schema parses")
    }

    /// Opens a Subscribe stream with a first request.
    pub async fn subscribe(
        &self,
        topic: &str,
        preset: ReplayPreset,
        replay_id: Vec<u8>,
        n: i32,
    ) -> Result<Sub, Status> {
        let (tx, rx) = mpsc::channel(16);
        tx.send(FetchRequest {
            topic_name: topic.into(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: n,
            auth_refresh: String::new(),
        })
        .await
        .unwrap();
        let mut c = self.client.clone();
        let stream = c
            .subscribe(self.req(ReceiverStream::new(rx)))
            .await?
            .into_inner();
        Ok(Sub { tx, stream })
    }

    /// Decodes an event payload with the schema GetSchema returns for its id.
    pub async fn decode(&self, schema_id: &str, payload: &[u8]) -> Event {
        let schema = self.schema(schema_id).await;
        Event::decode(&schema, payload)
    }

    /// Waits for `n` events on `sub` (asking for nothing more), decoded.
    pub async fn events(&self, sub: &mut Sub, n: usize) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while out.len() < n {
            if tokio::time::Instant::now() > deadline {
                let got: Vec<(String, String)> = out
                    .iter()
                    .map(|e| (e.change_type().to_string(), e.record_id().to_string()))
                    .collect();
                panic!("expected {n} events within {PATIENCE:?}, got {got:?}");
            }
            let resp = sub.next().await.expect("stream stays open");
            for e in resp.events {
                let ev = e.event.expect("event");
                let mut decoded = self.decode(&ev.schema_id, &ev.payload).await;
                decoded.replay_id = e.replay_id;
                decoded.schema_id = ev.schema_id;
                out.push(decoded);
            }
        }
        out
    }
}

/// A Subscribe stream driven by the test.
pub struct Sub {
    /// Further FetchRequests.
    pub tx: mpsc::Sender<FetchRequest>,
    /// Responses.
    pub stream: Streaming<FetchResponse>,
}

impl Sub {
    /// The next response (`Err` when the server ended the stream with a status).
    pub async fn next(&mut self) -> Result<FetchResponse, Status> {
        match tokio::time::timeout(PATIENCE, self.stream.message()).await {
            Ok(Ok(Some(r))) => Ok(r),
            Ok(Ok(None)) => Err(Status::cancelled("stream ended")),
            Ok(Err(s)) => Err(s),
            Err(_) => panic!("no response within {PATIENCE:?}"),
        }
    }

    /// The next response that carries events (skipping keepalives).
    pub async fn next_with_events(&mut self) -> Result<FetchResponse, Status> {
        loop {
            let r = self.next().await?;
            if !r.events.is_empty() {
                return Ok(r);
            }
        }
    }

    /// Asks for `n` more events.
    pub async fn request(&self, n: i32) {
        self.tx
            .send(FetchRequest {
                num_requested: n,
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// A decoded change event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The ChangeEventHeader as JSON (bitmaps still encoded).
    pub header: Value,
    /// The body fields (every schema field, nulls included).
    pub body: Map<String, Value>,
    /// `changedFields` decoded to names (`BillingAddress.City` for nested ones).
    pub changed: Vec<String>,
    /// `nulledFields` decoded.
    pub nulled: Vec<String>,
    /// `diffFields` decoded.
    pub diffed: Vec<String>,
    /// The event's replay id.
    pub replay_id: Vec<u8>,
    /// The event's schema id.
    pub schema_id: String,
}

impl Event {
    /// Decodes `payload` with `schema`.
    pub fn decode(schema: &apache_avro::Schema, payload: &[u8]) -> Event {
        let v =
            apache_avro::from_avro_datum(schema, &mut &payload[..], None).expect("avro decodes");
        let Value::Object(mut body) = to_json(v) else {
            panic!("payload is not a record")
        };
        let header = body.remove("ChangeEventHeader").expect("header first");
        let names = |k: &str| {
            let arr: Vec<String> = header[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            bitmap_names(schema, &arr)
        };
        Event {
            changed: names("changedFields"),
            nulled: names("nulledFields"),
            diffed: names("diffFields"),
            header,
            body,
            replay_id: Vec::new(),
            schema_id: String::new(),
        }
    }

    /// `changeType`.
    pub fn change_type(&self) -> &str {
        self.header["changeType"].as_str().unwrap()
    }

    /// The first record id.
    pub fn record_id(&self) -> &str {
        self.header["recordIds"][0].as_str().unwrap_or_default()
    }

    /// Body fields that carry a value.
    pub fn non_null(&self) -> Vec<&str> {
        self.body
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// Avro value → JSON (unions unwrapped, enums as their symbol).
pub fn to_json(v: Avro) -> Value {
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => json!(b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => json!(i),
        Avro::Long(i) => json!(i),
        Avro::Double(d) => json!(d),
        Avro::String(s) => json!(s),
        Avro::Enum(_, s) => json!(s),
        Avro::Union(_, b) => to_json(*b),
        Avro::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        Avro::Record(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        other => panic!("unexpected avro value {other:?}"),
    }
}

/// The record fields of a (possibly `["null", record]`) schema.
fn record_fields(schema: &apache_avro::Schema) -> Vec<(String, apache_avro::Schema)> {
    use apache_avro::Schema as S;
    match schema {
        S::Record(r) => r
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.schema.clone()))
            .collect(),
        S::Union(u) => u.variants().iter().flat_map(record_fields).collect(),
        _ => Vec::new(),
    }
}

/// Decodes a bitmap array the way Salesforce's ChangeEventHeaderUtility.py does: the hex
/// digits as a bit string, reversed, each set position naming a schema field; nested
/// `pos-0x..` elements name fields of the compound field at `pos`.
pub fn bitmap_names(schema: &apache_avro::Schema, bitmaps: &[String]) -> Vec<String> {
    let fields = record_fields(schema);
    let mut out = Vec::new();
    for b in bitmaps {
        let (parent, hex) = match b.split_once('-') {
            Some((p, h)) => (Some(p.parse::<usize>().unwrap()), h),
            None => (None, b.as_str()),
        };
        let hex = hex.strip_prefix("0x").expect("0x prefix");
        let bits: String = hex
            .chars()
            .map(|c| format!("{:04b}", c.to_digit(16).expect("hex digit")))
            .collect();
        let reversed: Vec<char> = bits.chars().rev().collect();
        let (names, prefix) = match parent {
            None => (fields.clone(), String::new()),
            Some(p) => {
                let (name, s) = fields[p].clone();
                (record_fields(&s), format!("{name}."))
            }
        };
        for (i, c) in reversed.iter().enumerate() {
            if *c == '1' {
                out.push(format!("{prefix}{}", names[i].0));
            }
        }
    }
    out
}
