//! The emulator's Pub/Sub API over real gRPC with a tonic client generated from the same
//! proto: GetTopic, GetSchema, Publish refusal, auth failures, Subscribe flow control,
//! replay presets, resume after a replay id, keepalive, and REST writes publishing CREATE,
//! UPDATE and DELETE events (payloads decoded with apache-avro's reader, bitmaps decoded
//! like Salesforce's ChangeEventHeaderUtility.py).

mod pubsub_support;

use pgforce_emulator::pubsub::proto::{PublishRequest, ReplayPreset, SchemaRequest, TopicRequest};
use pubsub_support::{PubSubEnv, Sub};
use serde_json::json;
use tonic::{Code, Request, Status};

const ACCOUNT: &str = "/data/AccountChangeEvent";

fn error_code(s: &Status) -> String {
    s.metadata()
        .get("error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn get_topic_get_schema_and_publish_refusal() {
    let env = PubSubEnv::start().await;
    let mut c = env.client.clone();
    let info = c
        .get_topic(env.req(TopicRequest {
            topic_name: ACCOUNT.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.topic_name, ACCOUNT);
    assert!(!info.can_publish);
    assert!(info.can_subscribe);
    assert_eq!(info.tenant_guid, env.emu.handle.org_id());
    assert!(!info.rpc_id.is_empty());
    assert_eq!(info.schema_id.len(), 22);

    let schema = c
        .get_schema(env.req(SchemaRequest {
            schema_id: info.schema_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(schema.schema_id, info.schema_id);
    let json: serde_json::Value = serde_json::from_str(&schema.schema_json).unwrap();
    assert_eq!(json["name"], "AccountChangeEvent");
    assert_eq!(json["namespace"], "com.sforce.eventbus");
    assert_eq!(json["fields"][0]["name"], "ChangeEventHeader");
    assert_eq!(json["fields"][1]["type"][0], "null");

    let custom = env.schema_id("/data/Subscription__ChangeEvent").await;
    assert_ne!(custom, info.schema_id);
    let all = c
        .get_topic(env.req(TopicRequest {
            topic_name: "/data/ChangeEvents".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.schema_id, "");

    let blank = c
        .get_schema(env.req(SchemaRequest {
            schema_id: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(blank.code(), Code::InvalidArgument);
    let unknown = c
        .get_schema(env.req(SchemaRequest {
            schema_id: "nope".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let missing = c
        .get_topic(env.req(TopicRequest {
            topic_name: "/data/NopeChangeEvent".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing.message().contains("rpcId: "),
        "{}",
        missing.message()
    );

    let publish = c
        .publish(env.req(PublishRequest {
            topic_name: ACCOUNT.into(),
            events: Vec::new(),
            auth_refresh: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(publish.code(), Code::PermissionDenied);
    assert!(publish.message().contains("rpcId: "));
}

#[tokio::test]
async fn auth_failures_are_unauthenticated_with_the_error_code() {
    let env = PubSubEnv::start().await;
    let mut c = env.client.clone();
    let topic = || TopicRequest {
        topic_name: ACCOUNT.into(),
    };
    let mut cases: Vec<Request<TopicRequest>> = Vec::new();
    cases.push(Request::new(topic()));
    let mut bad_token = env.req(topic());
    bad_token
        .metadata_mut()
        .insert("accesstoken", "00D!not-a-token".parse().unwrap());
    cases.push(bad_token);
    let mut bad_tenant = env.req(topic());
    bad_tenant
        .metadata_mut()
        .insert("tenantid", "00D000000000001AAA".parse().unwrap());
    cases.push(bad_tenant);
    let mut bad_instance = env.req(topic());
    bad_instance.metadata_mut().insert(
        "instanceurl",
        "https://elsewhere.my.salesforce.com".parse().unwrap(),
    );
    cases.push(bad_instance);
    for req in cases {
        let e = c.get_topic(req).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert_eq!(
            error_code(&e),
            "sfdc.platform.eventbus.grpc.service.auth.error"
        );
        assert!(e.message().contains("rpcId: "));
    }
    env.emu.handle.expire_tokens();
    let e = match env
        .subscribe(ACCOUNT, ReplayPreset::Earliest, Vec::new(), 1)
        .await
    {
        Err(e) => e,
        Ok(mut sub) => sub.next().await.unwrap_err(),
    };
    assert_eq!(e.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn rest_writes_publish_create_update_delete() {
    let env = PubSubEnv::start().await;
    let mut sub = env
        .subscribe(ACCOUNT, ReplayPreset::Latest, Vec::new(), 10)
        .await
        .unwrap();
    // The first keepalive proves the subscription is registered before the writes.
    let first = sub.next().await.unwrap();
    assert!(first.events.is_empty());
    let emu = &env.emu;
    let created = emu
        .call(
            reqwest::Method::POST,
            "/sobjects/Account",
            Some(&json!({"Name": "Acme", "Description": "first", "BillingCity": "Paris", "NumberOfEmployees": 5})),
            &[("Sforce-Call-Options", "client=pgforce-test")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_string();
    // The update must land in a later millisecond than the create, or LastModifiedDate
    // does not change (the emulator is fast enough for both to share one).
    emu.handle.advance_clock(chrono::Duration::milliseconds(2));
    let r = emu
        .patch(
            &format!("/sobjects/Account/{id}"),
            &json!({"Phone": "555", "Description": null, "BillingCity": "Lyon"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = emu.delete(&format!("/sobjects/Account/{id}")).await;
    assert_eq!(r.status, 204);

    let events = env.events(&mut sub, 3).await;
    let user = env
        .emu
        .handle
        .state()
        .default_user()
        .unwrap()
        .id
        .to_string();
    let (c, u, d) = (&events[0], &events[1], &events[2]);
    assert_eq!(c.change_type(), "CREATE");
    assert_eq!(c.record_id(), id);
    assert_eq!(c.header["entityName"], "Account");
    assert_eq!(
        c.header["changeOrigin"],
        "com/salesforce/api/rest/60.0;client=pgforce-test"
    );
    assert_eq!(c.header["commitUser"], user.as_str());
    assert_eq!(c.header["sequenceNumber"], 1);
    assert!(c.header["commitTimestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(c.body["Name"], "Acme");
    assert_eq!(c.body["NumberOfEmployees"], 5);
    assert_eq!(c.body["BillingAddress"]["City"], "Paris");
    assert!(c.body["CreatedDate"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(c.changed.is_empty() && c.nulled.is_empty());
    assert!(!c.body.contains_key("Id") && !c.body.contains_key("SystemModstamp"));

    assert_eq!(u.change_type(), "UPDATE");
    assert_eq!(
        u.header["changeOrigin"],
        "com/salesforce/api/rest/60.0;client="
    );
    assert_ne!(u.header["transactionKey"], c.header["transactionKey"]);
    assert_eq!(u.body["Phone"], "555");
    assert!(u.body["Name"].is_null(), "unchanged fields are null");
    assert_eq!(u.body["BillingAddress"]["City"], "Lyon");
    assert!(u.body["BillingAddress"]["Street"].is_null());
    for f in [
        "Phone",
        "Description",
        "LastModifiedDate",
        "BillingAddress.City",
    ] {
        assert!(u.changed.contains(&f.to_string()), "{f} in {:?}", u.changed);
    }
    assert!(!u.changed.contains(&"Name".to_string()));
    assert_eq!(u.nulled, vec!["Description"]);
    assert!(u.body["LastModifiedDate"].as_i64().is_some());

    assert_eq!(d.change_type(), "DELETE");
    assert_eq!(d.record_id(), id);
    assert!(d.non_null().is_empty(), "{:?}", d.non_null());
    assert!(d.replay_id > u.replay_id && u.replay_id > c.replay_id);
}

/// Inserts `n` accounts through REST.
async fn accounts(env: &PubSubEnv, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            env.emu
                .insert("Account", json!({"Name": format!("A{i}")}))
                .await,
        );
    }
    ids
}

#[tokio::test]
async fn flow_control_delivers_only_what_was_requested() {
    let env = PubSubEnv::start().await;
    let ids = accounts(&env, 5).await;
    let mut sub = env
        .subscribe(ACCOUNT, ReplayPreset::Earliest, Vec::new(), 2)
        .await
        .unwrap();
    let r = sub.next_with_events().await.unwrap();
    assert_eq!(r.events.len(), 2);
    assert_eq!(r.pending_num_requested, 0);
    assert_eq!(r.latest_replay_id, r.events[1].replay_id);
    // Nothing is owed: the next response is a keepalive, not an event.
    let k = sub.next().await.unwrap();
    assert!(k.events.is_empty());
    assert_eq!(
        k.latest_replay_id, r.latest_replay_id,
        "the position stays at the undelivered events"
    );
    sub.request(500).await; // capped at 100
    let r = sub.next_with_events().await.unwrap();
    assert_eq!(r.events.len(), 3);
    assert_eq!(r.pending_num_requested, 97);
    let got: Vec<String> = {
        let mut v = Vec::new();
        for e in &r.events {
            let ev = e.event.as_ref().unwrap();
            v.push(
                env.decode(&ev.schema_id, &ev.payload)
                    .await
                    .record_id()
                    .to_string(),
            );
        }
        v
    };
    assert_eq!(got, ids[2..].to_vec());
}

#[tokio::test]
async fn replay_presets_and_resume_after_a_replay_id() {
    let env = PubSubEnv::start().await;
    let ids = accounts(&env, 3).await;
    let mut earliest = env
        .subscribe(ACCOUNT, ReplayPreset::Earliest, Vec::new(), 10)
        .await
        .unwrap();
    let all = env.events(&mut earliest, 3).await;
    assert_eq!(
        all.iter()
            .map(|e| e.record_id().to_string())
            .collect::<Vec<_>>(),
        ids
    );
    assert!(all.iter().all(|e| e.replay_id.len() == 8));

    let mut custom = env
        .subscribe(ACCOUNT, ReplayPreset::Custom, all[0].replay_id.clone(), 10)
        .await
        .unwrap();
    let rest = env.events(&mut custom, 2).await;
    assert_eq!(rest[0].record_id(), ids[1], "CUSTOM resumes after the id");
    assert_eq!(rest[1].record_id(), ids[2]);

    let mut latest = env
        .subscribe(ACCOUNT, ReplayPreset::Latest, Vec::new(), 10)
        .await
        .unwrap();
    let k = latest.next().await.unwrap();
    assert!(k.events.is_empty(), "LATEST skips what was there");
    let new = accounts(&env, 1).await;
    let got = env.events(&mut latest, 1).await;
    assert_eq!(got[0].record_id(), new[0]);
    // Options of later requests are ignored (only num_requested counts).
    latest
        .tx
        .send(pgforce_emulator::pubsub::proto::FetchRequest {
            topic_name: ACCOUNT.into(),
            replay_preset: ReplayPreset::Earliest as i32,
            num_requested: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let k = latest.next().await.unwrap();
    assert!(k.events.is_empty());
}

async fn refused(env: &PubSubEnv, replay: Vec<u8>) -> Status {
    let mut sub: Sub = env
        .subscribe(ACCOUNT, ReplayPreset::Custom, replay, 1)
        .await
        .unwrap();
    sub.next().await.unwrap_err()
}

#[tokio::test]
async fn corrupted_and_expired_replay_ids_are_invalid_argument() {
    let env = PubSubEnv::start().await;
    accounts(&env, 2).await;
    for bad in [vec![1, 2, 3], u64::MAX.to_be_bytes().to_vec()] {
        let e = refused(&env, bad).await;
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(
            error_code(&e),
            "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
        );
        assert!(e.message().contains("rpcId: "));
    }
    let mut sub = env
        .subscribe(ACCOUNT, ReplayPreset::Earliest, Vec::new(), 1)
        .await
        .unwrap();
    let first = env.events(&mut sub, 1).await.remove(0);
    let (status, _) = env
        .admin(reqwest::Method::POST, "/__emulator/cdc/expire", None)
        .await;
    assert_eq!(status, 204);
    let e = refused(&env, first.replay_id.clone()).await;
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&e),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );
    // EARLIEST now starts after the expired events.
    let mut sub = env
        .subscribe(ACCOUNT, ReplayPreset::Earliest, Vec::new(), 5)
        .await
        .unwrap();
    assert!(sub.next().await.unwrap().events.is_empty());
}

#[tokio::test]
async fn retention_drops_old_events() {
    let mut env = PubSubEnv::start().await;
    accounts(&env, 2).await;
    env.emu.handle.advance_clock(chrono::Duration::hours(73));
    env.emu.token = env.emu.handle.issue_default_token().unwrap();
    let new = accounts(&env, 1).await;
    let mut sub = env
        .subscribe(ACCOUNT, ReplayPreset::Earliest, Vec::new(), 5)
        .await
        .unwrap();
    let got = env.events(&mut sub, 1).await;
    assert_eq!(
        got[0].record_id(),
        new[0],
        "events older than 72 h are gone"
    );
    let (status, body) = env
        .admin(
            reqwest::Method::PUT,
            "/__emulator/cdc/retention",
            Some(json!({"secs": 0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retained"], 0);
}

#[tokio::test]
async fn keepalive_carries_the_latest_replay_id() {
    let env = PubSubEnv::start().await;
    accounts(&env, 1).await;
    let contact = env.emu.insert("Contact", json!({"LastName": "K"})).await;
    assert!(!contact.is_empty());
    let mut sub = env
        .subscribe(ACCOUNT, ReplayPreset::Earliest, Vec::new(), 5)
        .await
        .unwrap();
    let got = sub.next_with_events().await.unwrap();
    assert_eq!(got.events.len(), 1);
    let k = sub.next().await.unwrap();
    assert!(k.events.is_empty());
    assert_eq!(
        k.latest_replay_id,
        env.emu.handle.cdc().log.latest().to_be_bytes().to_vec(),
        "the position moves past other objects' events"
    );
    assert!(!k.rpc_id.is_empty());
    assert_eq!(k.pending_num_requested, 4);
}

#[tokio::test]
async fn a_later_request_for_another_topic_is_invalid_argument() {
    let env = PubSubEnv::start().await;
    let sub = env
        .subscribe(ACCOUNT, ReplayPreset::Latest, Vec::new(), 1)
        .await
        .unwrap();
    sub.tx
        .send(pgforce_emulator::pubsub::proto::FetchRequest {
            topic_name: "/data/ContactChangeEvent".into(),
            num_requested: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut sub = sub;
    let e = loop {
        match sub.next().await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = match env
        .subscribe("/data/NopeChangeEvent", ReplayPreset::Latest, Vec::new(), 1)
        .await
    {
        Err(e) => e,
        Ok(mut s) => s.next().await.unwrap_err(),
    };
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn all_change_events_topic_carries_every_object_with_its_schema() {
    let env = PubSubEnv::start().await;
    let a = env.emu.insert("Account", json!({"Name": "A"})).await;
    let c = env
        .emu
        .insert("Contact", json!({"FirstName": "Jo", "LastName": "S"}))
        .await;
    let s = env.emu.insert("Subscription__c", json!({})).await;
    let mut sub = env
        .subscribe("/data/ChangeEvents", ReplayPreset::Earliest, Vec::new(), 10)
        .await
        .unwrap();
    let got = env.events(&mut sub, 3).await;
    assert_eq!(got[0].record_id(), a);
    assert_eq!(got[1].record_id(), c);
    assert_eq!(got[1].header["entityName"], "Contact");
    assert_eq!(got[1].body["Name"]["FirstName"], "Jo");
    assert_eq!(got[1].body["Name"]["LastName"], "S");
    assert_eq!(got[2].record_id(), s);
    assert_eq!(got[2].header["entityName"], "Subscription__c");
    assert_ne!(got[0].schema_id, got[1].schema_id);
    assert_eq!(got[0].schema_id, env.schema_id(ACCOUNT).await);
}
