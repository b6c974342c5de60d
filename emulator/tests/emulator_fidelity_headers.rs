//! Response header names on the wire, read with a raw TCP client: Salesforce spells them
//! `Content-Type`, `Sforce-Limit-Info`, `Sforce-Locator`, `Sforce-NumberOfRecords` and
//! `Location` over HTTP/1.1, and some clients look them up case-sensitively.

mod emulator_support;

use emulator_support::{Emu, V};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one raw HTTP/1.1 request and returns the response head (status line and headers).
async fn raw_head(emu: &Emu, method: &str, path: &str, body: Option<&str>) -> String {
    let mut stream = TcpStream::connect(emu.handle.addr())
        .await
        .expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n",
        emu.handle.addr(),
        emu.token
    );
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or_default());
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("read");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let end = text.find("\r\n\r\n").expect("complete head");
    text[..end].to_string()
}

/// The header names of a response head, exactly as sent.
fn names(head: &str) -> Vec<&str> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .collect()
}

#[tokio::test]
async fn rest_headers_use_salesforce_spelling() {
    let emu = Emu::start().await;
    let head = raw_head(&emu, "GET", &format!("/services/data/{V}/limits"), None).await;
    let names = names(&head);
    assert!(names.contains(&"Content-Type"), "{head}");
    assert!(names.contains(&"Sforce-Limit-Info"), "{head}");
    assert!(!head.contains("sforce-limit-info"), "{head}");
}

#[tokio::test]
async fn create_sends_location_in_canonical_case() {
    let emu = Emu::start().await;
    let path = format!("/services/data/{V}/sobjects/Account");
    let head = raw_head(&emu, "POST", &path, Some(r#"{"Name":"Acme"}"#)).await;
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap_or_else(|| panic!("no Location header: {head}"));
    assert!(location.starts_with(&format!("{path}/001")), "{location}");
}

#[tokio::test]
async fn bulk_query_results_send_locator_and_count_in_canonical_case() {
    let emu = Emu::start().await;
    for n in 0..3 {
        emu.insert("Account", json!({"Name": format!("A{n}")}))
            .await;
    }
    let job = emu
        .post(
            "/jobs/query",
            &json!({"operation": "query", "query": "SELECT Id FROM Account"}),
        )
        .await
        .json();
    let id = job["id"].as_str().expect("job id").to_string();
    emu.wait_job("query", &id).await;
    let path = format!("/services/data/{V}/jobs/query/{id}/results?maxRecords=2");
    let head = raw_head(&emu, "GET", &path, None).await;
    let names = names(&head);
    assert!(names.contains(&"Sforce-NumberOfRecords"), "{head}");
    assert!(names.contains(&"Sforce-Locator"), "{head}");
    assert!(names.contains(&"Content-Type"), "{head}");
    assert!(head.contains("\r\nSforce-NumberOfRecords: 2"), "{head}");
}

#[tokio::test]
async fn composite_create_results_carry_location() {
    let emu = Emu::start().await;
    let body = json!({
        "allOrNone": false,
        "compositeRequest": [
            {"method": "POST", "url": format!("/services/data/{V}/sobjects/Account"),
             "referenceId": "acct", "body": {"Name": "Acme"}},
            {"method": "PATCH", "url": format!("/services/data/{V}/sobjects/Account/@{{acct.id}}"),
             "referenceId": "upd", "body": {"Name": "Acme 2"}},
        ]
    });
    let r = emu.post("/composite", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.json()["compositeResponse"].clone();
    let created = &results[0];
    assert_eq!(created["httpStatusCode"], 201, "{created}");
    let id = created["body"]["id"].as_str().expect("id");
    assert_eq!(
        created["httpHeaders"]["Location"],
        json!(format!("/services/data/{V}/sobjects/Account/{id}")),
        "{created}"
    );
    let updated = &results[1];
    assert_eq!(updated["httpStatusCode"], 204, "{updated}");
    assert_eq!(updated["httpHeaders"], json!({}), "{updated}");
}
