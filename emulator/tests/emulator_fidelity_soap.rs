//! The SOAP partner `login` / `getUserInfo` over real HTTP, with the request bodies
//! simple-salesforce and jsforce send and the elements they read back.

mod emulator_support;

use emulator_support::Emu;
use pgforce_emulator::config::{DEMO_PASSWORD, DEMO_USERNAME};
use reqwest::StatusCode;

/// The element text a client's regex or XML lookup would find (`<name>text</name>`).
fn text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..start + len])
}

/// simple-salesforce's login envelope (prefixed elements, `SOAPAction: login`).
fn simple_salesforce_login(username: &str, password: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
  <env:Header><urn:CallOptions><urn:client>simple-salesforce</urn:client><urn:defaultNamespace>sf</urn:defaultNamespace></urn:CallOptions></env:Header>
  <env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{username}</n1:username><n1:password>{password}</n1:password></n1:login></env:Body>
</env:Envelope>"#
    )
}

/// jsforce's login envelope (default namespace, `SOAPAction: ""`).
fn jsforce_login(username: &str, password: &str) -> String {
    format!(
        r#"<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header/><se:Body><login xmlns="urn:partner.soap.sforce.com"><username>{username}</username><password>{password}</password></login></se:Body></se:Envelope>"#
    )
}

async fn soap(emu: &Emu, path: &str, action: &str, body: String) -> (StatusCode, String, String) {
    let r = emu
        .client
        .post(format!("{}{path}", emu.base))
        .header("content-type", "text/xml; charset=UTF-8")
        .header("SOAPAction", action)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
    (status, ctype, r.text().await.unwrap())
}

#[tokio::test]
async fn login_answers_what_simple_salesforce_and_jsforce_read() {
    let emu = Emu::start().await;
    for body in [
        simple_salesforce_login(DEMO_USERNAME, DEMO_PASSWORD),
        jsforce_login(DEMO_USERNAME, DEMO_PASSWORD),
    ] {
        let (status, ctype, xml) = soap(&emu, "/services/Soap/u/60.0", "login", body).await;
        assert_eq!(status, StatusCode::OK, "{xml}");
        assert!(ctype.starts_with("text/xml"), "{ctype}");
        let session = text(&xml, "sessionId").expect("sessionId");
        let server_url = text(&xml, "serverUrl").expect("serverUrl");
        assert!(server_url.starts_with(&format!("{}/services/Soap/u/60.0/00D", emu.base)));
        assert!(text(&xml, "userId").unwrap().starts_with("005"));
        assert!(text(&xml, "organizationId").unwrap().starts_with("00D"));
        assert_eq!(text(&xml, "userName"), Some(DEMO_USERNAME));
        assert_eq!(text(&xml, "passwordExpired"), Some("false"));

        let r = emu
            .client
            .get(format!("{}/services/data/v60.0/limits", emu.base))
            .bearer_auth(session)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "the session id is a REST bearer token"
        );
    }
}

#[tokio::test]
async fn bad_credentials_are_an_invalid_login_fault() {
    let emu = Emu::start().await;
    for body in [
        simple_salesforce_login(DEMO_USERNAME, "wrong"),
        jsforce_login("nobody@example.com", DEMO_PASSWORD),
    ] {
        let (status, _, xml) = soap(&emu, "/services/Soap/u/60.0", "login", body).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{xml}");
        assert_eq!(text(&xml, "faultcode"), Some("sf:INVALID_LOGIN"));
        assert!(text(&xml, "faultstring")
            .unwrap()
            .starts_with("INVALID_LOGIN: "));
        assert_eq!(text(&xml, "sf:exceptionCode"), Some("INVALID_LOGIN"));
        assert!(text(&xml, "sf:exceptionMessage").is_some(), "{xml}");
        assert!(!xml.contains("sessionId"));
    }
}

#[tokio::test]
async fn get_user_info_needs_a_valid_session_header() {
    let emu = Emu::start().await;
    let call = |session: String| {
        format!(
            r#"<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>{session}</sessionId></SessionHeader></se:Header><se:Body><getUserInfo xmlns="urn:partner.soap.sforce.com"/></se:Body></se:Envelope>"#
        )
    };
    let path = "/services/Soap/u/60.0/00D5g00000PGFRC";
    let (status, _, xml) = soap(&emu, path, "getUserInfo", call(emu.token.clone())).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_eq!(text(&xml, "userName"), Some(DEMO_USERNAME));
    assert!(xml.contains("<getUserInfoResponse>"));

    let (status, _, xml) = soap(&emu, path, "getUserInfo", call("00Dxx!bogus".into())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(text(&xml, "faultcode"), Some("sf:INVALID_SESSION_ID"));
}

#[tokio::test]
async fn other_operations_versions_and_bodies_are_faults() {
    let emu = Emu::start().await;
    let query = r#"<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Body><query xmlns="urn:partner.soap.sforce.com"><queryString>SELECT Id FROM Account</queryString></query></se:Body></se:Envelope>"#;
    let (status, _, xml) = soap(&emu, "/services/Soap/u/60.0", "query", query.into()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(text(&xml, "faultcode"), Some("soapenv:Client"));

    let login = jsforce_login(DEMO_USERNAME, DEMO_PASSWORD);
    let (status, _, xml) = soap(&emu, "/services/Soap/u/7.0", "login", login).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(text(&xml, "faultcode"), Some("sf:UNSUPPORTED_API_VERSION"));

    for junk in ["", "not xml", "<se:Envelope><se:Body>", "\u{feff}<<<>>>&&&"] {
        let (status, _, xml) = soap(&emu, "/services/Soap/u/60.0", "login", junk.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{junk:?}: {xml}");
        assert!(text(&xml, "faultcode").is_some(), "{xml}");
    }
}
