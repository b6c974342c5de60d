//! The SOAP partner API's `login` and `getUserInfo` (`POST /services/Soap/u/NN.N`), which
//! popular clients (simple-salesforce, jsforce) use by default for username/password
//! login. Only these two operations exist; anything else gets a SOAP fault. Bad
//! credentials answer `sf:INVALID_LOGIN`, a bad session `sf:INVALID_SESSION_ID`, both as
//! SOAP 1.1 faults with HTTP 500 like Salesforce. The request is read with a small
//! element-text scanner (no XML crate): it never panics and only needs the few leaf
//! elements these calls carry. Passwords and session ids are never logged.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

use super::auth::constant_time_eq;
use super::context::{MAX_VERSION, MIN_VERSION};
use super::ids::Id;
use super::session::{issue_access_token, Session};
use super::state::{AppState, EmulatorState};

const PARTNER_NS: &str = "urn:partner.soap.sforce.com";
const INVALID_LOGIN: &str = "Invalid username, password, security token; or user locked out.";

/// Routes: the partner endpoint, with and without the org id `serverUrl` carries.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services/Soap/u/{version}", post(partner))
        .route("/services/Soap/u/{version}/{org}", post(partner))
}

/// A SOAP fault: `faultcode`, `faultstring`, and the `sf:` exception in `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fault {
    /// `sf:INVALID_LOGIN`, or a SOAP code such as `soapenv:Client`.
    code: String,
    /// Human-readable message.
    message: String,
    /// The detail element (`LoginFault`, `UnexpectedErrorFault`), if any.
    detail: Option<&'static str>,
}

impl Fault {
    fn api(exception: &str, message: &str, detail: &'static str) -> Fault {
        Fault {
            code: format!("sf:{exception}"),
            message: format!("{exception}: {message}"),
            detail: Some(detail),
        }
    }

    fn client(message: impl Into<String>) -> Fault {
        Fault {
            code: "soapenv:Client".into(),
            message: message.into(),
            detail: None,
        }
    }

    fn into_response(self) -> Response {
        let detail = self.detail.map_or_else(String::new, |kind| {
            let exception = self.code.trim_start_matches("sf:");
            let message = self
                .message
                .split_once(": ")
                .map_or(self.message.as_str(), |(_, m)| m);
            format!(
                "<detail><sf:{kind} xsi:type=\"sf:{kind}\"><sf:exceptionCode>{}</sf:exceptionCode><sf:exceptionMessage>{}</sf:exceptionMessage></sf:{kind}></detail>",
                escape(exception),
                escape(message)
            )
        });
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:sf=\"urn:fault.partner.soap.sforce.com\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><soapenv:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring>{detail}</soapenv:Fault></soapenv:Body></soapenv:Envelope>",
            escape(&self.code),
            escape(&self.message)
        );
        xml_response(StatusCode::INTERNAL_SERVER_ERROR, body)
    }
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")],
        body,
    )
        .into_response()
}

/// `POST /services/Soap/u/{version}[/{org}]`.
async fn partner(
    State(state): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let version = params.first().map(|(_, v)| v.as_str()).unwrap_or_default();
    match handle(&state, version, &body) {
        Ok(xml) => xml_response(StatusCode::OK, xml),
        Err(fault) => {
            tracing::debug!(faultcode = %fault.code, "soap call refused");
            fault.into_response()
        }
    }
}

fn handle(state: &EmulatorState, version: &str, body: &[u8]) -> Result<String, Fault> {
    let version = parse_version(version).ok_or_else(|| {
        Fault::api(
            "UNSUPPORTED_API_VERSION",
            &format!("Invalid Api version specified on URL: {version}"),
            "UnexpectedErrorFault",
        )
    })?;
    let xml = std::str::from_utf8(body)
        .map_err(|_| Fault::client("The request body is not valid UTF-8"))?;
    let operation = body_operation(xml)
        .ok_or_else(|| Fault::client("Unable to find a SOAP Body operation in the request"))?;
    match operation {
        "login" => login(state, version, xml),
        "getUserInfo" => get_user_info(state, xml),
        other => Err(Fault::client(format!(
            "No operation available for request {{{PARTNER_NS}}}{other}"
        ))),
    }
}

/// `60.0` → 60, within the served range.
fn parse_version(segment: &str) -> Option<u32> {
    let n = segment.strip_suffix(".0")?.parse::<u32>().ok()?;
    (MIN_VERSION..=MAX_VERSION).contains(&n).then_some(n)
}

/// `login(username, password)`: a session for a configured user with that password.
fn login(state: &EmulatorState, version: u32, xml: &str) -> Result<String, Fault> {
    let username = element_text(xml, "username").unwrap_or_default();
    let password = element_text(xml, "password").unwrap_or_default();
    let refused = || Fault::api("INVALID_LOGIN", INVALID_LOGIN, "LoginFault");
    let user = state.user(username.trim()).ok_or_else(refused)?;
    let ok = user
        .password
        .as_deref()
        .is_some_and(|p| constant_time_eq(p.as_bytes(), password.as_bytes()));
    if !ok {
        return Err(refused());
    }
    let (session_id, session) = issue_access_token(state, user.id, &user.username, None);
    let base = &state.base_url;
    let org = state.org_id;
    Ok(envelope(&format!(
        "<loginResponse><result>\
         <metadataServerUrl>{base}/services/Soap/m/{version}.0/{org}</metadataServerUrl>\
         <passwordExpired>false</passwordExpired><sandbox>false</sandbox>\
         <serverUrl>{base}/services/Soap/u/{version}.0/{org}</serverUrl>\
         <sessionId>{}</sessionId><userId>{}</userId><userInfo>{}</userInfo>\
         </result></loginResponse>",
        escape(&session_id),
        session.user_id,
        user_info(state, &session)
    )))
}

/// `getUserInfo()` of the session in the `SessionHeader`.
fn get_user_info(state: &EmulatorState, xml: &str) -> Result<String, Fault> {
    let token = element_text(xml, "sessionId").unwrap_or_default();
    let session = state
        .tokens
        .session(token.trim(), state.clock.now())
        .ok_or_else(|| {
            Fault::api(
                "INVALID_SESSION_ID",
                "Invalid Session ID found in SessionHeader: Illegal Session",
                "UnexpectedErrorFault",
            )
        })?;
    Ok(envelope(&format!(
        "<getUserInfoResponse><result>{}</result></getUserInfoResponse>",
        user_info(state, &session)
    )))
}

fn envelope(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns=\"{PARTNER_NS}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"
    )
}

/// The `GetUserInfoResult` fields, in the WSDL's order.
fn user_info(state: &EmulatorState, session: &Session) -> String {
    let record = state.store.get(&session.user_id);
    let field = |k: &str| {
        record
            .as_ref()
            .and_then(|r| r.get(k).cloned())
            .and_then(|v| match v {
                Value::String(s) => Some(s),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .unwrap_or_default()
    };
    let lifetime = state.config.token_lifetime_secs;
    let org = state.org_id;
    let user: Id = session.user_id;
    format!(
        "<accessibilityMode>false</accessibilityMode><chatterExternal>false</chatterExternal>\
         <currencySymbol>$</currencySymbol><orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit>\
         <orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode><orgDefaultCurrencyLocale>en_US</orgDefaultCurrencyLocale>\
         <orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments><orgHasPersonAccounts>false</orgHasPersonAccounts>\
         <organizationId>{org}</organizationId><organizationMultiCurrency>false</organizationMultiCurrency>\
         <organizationName>pgforce emulator</organizationName>\
         <profileId>00e000000000000AAA</profileId><roleId xsi:nil=\"true\"/>\
         <sessionSecondsValid>{lifetime}</sessionSecondsValid><userDefaultCurrencyIsoCode xsi:nil=\"true\"/>\
         <userEmail>{}</userEmail><userFullName>{}</userFullName><userId>{user}</userId>\
         <userLanguage>en_US</userLanguage><userLocale>en_US</userLocale><userName>{}</userName>\
         <userTimeZone>{}</userTimeZone><userType>Standard</userType><userUiSkin>Theme3</userUiSkin>",
        escape(&field("Email")),
        escape(&field("Name")),
        escape(&session.username),
        escape(&field("TimeZoneSidKey")),
    )
}

/// The local name (prefix dropped) of the first element inside `<…:Body>`.
fn body_operation(xml: &str) -> Option<&str> {
    let mut tags = StartTags::new(xml);
    tags.find(|t| t.local == "Body")?;
    tags.next().map(|t| t.local)
}

/// The unescaped text of the first element whose local name is `local`.
fn element_text(xml: &str, local: &str) -> Option<String> {
    let tag = StartTags::new(xml).find(|t| t.local == local)?;
    if tag.self_closing {
        return Some(String::new());
    }
    let rest = &xml[tag.end..];
    let close = format!("</{}", tag.qname);
    let content = &rest[..rest.find(&close)?];
    if let Some(cdata) = content
        .trim()
        .strip_prefix("<![CDATA[")
        .and_then(|c| c.strip_suffix("]]>"))
    {
        return Some(cdata.to_string());
    }
    unescape(content)
}

/// A start tag: its qualified and local name, where it ends, whether it is `<x/>`.
#[derive(Debug)]
struct StartTag<'a> {
    qname: &'a str,
    local: &'a str,
    end: usize,
    self_closing: bool,
}

/// Iterates the start tags of a document (skipping end tags, comments, PIs, CDATA).
struct StartTags<'a> {
    xml: &'a str,
    pos: usize,
}

impl<'a> StartTags<'a> {
    fn new(xml: &'a str) -> StartTags<'a> {
        StartTags { xml, pos: 0 }
    }
}

impl<'a> Iterator for StartTags<'a> {
    type Item = StartTag<'a>;

    fn next(&mut self) -> Option<StartTag<'a>> {
        loop {
            let open = self.pos + self.xml.get(self.pos..)?.find('<')?;
            let after = &self.xml[open + 1..];
            if after.starts_with("!--") {
                self.pos = open + 1 + after.find("-->")? + 3;
                continue;
            }
            if after.starts_with("![CDATA[") {
                self.pos = open + 1 + after.find("]]>")? + 3;
                continue;
            }
            let close = open + 1 + after.find('>')?;
            self.pos = close + 1;
            if after.starts_with(['/', '?', '!']) {
                continue;
            }
            let inner = &self.xml[open + 1..close];
            let qname_len = inner
                .find(|c: char| c.is_whitespace() || c == '/')
                .unwrap_or(inner.len());
            let qname = &inner[..qname_len];
            let local = qname.rsplit(':').next().unwrap_or(qname);
            return Some(StartTag {
                qname,
                local,
                end: close + 1,
                self_closing: inner.ends_with('/'),
            });
        }
    }
}

/// Resolves the five predefined entities and numeric references; `None` if malformed.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';')? + amp;
        let entity = &rest[amp + 1..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    entity.strip_prefix('#')?.parse().ok()?
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Escapes text for element content and attribute values.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSFORCE_STYLE: &str = "<se:Envelope xmlns:se=\"http://schemas.xmlsoap.org/soap/envelope/\"><se:Header/><se:Body><login xmlns=\"urn:partner.soap.sforce.com\"><username>a@b.c</username><password>p&amp;w&#x3C;d</password></login></se:Body></se:Envelope>";

    #[test]
    fn finds_operation_and_fields_with_or_without_prefixes() {
        assert_eq!(body_operation(JSFORCE_STYLE), Some("login"));
        assert_eq!(
            element_text(JSFORCE_STYLE, "username").as_deref(),
            Some("a@b.c")
        );
        assert_eq!(
            element_text(JSFORCE_STYLE, "password").as_deref(),
            Some("p&w<d")
        );
        let prefixed = "<?xml version=\"1.0\"?><env:Envelope><env:Header><!-- <n1:username>no</n1:username> --></env:Header><env:Body><n1:login xmlns:n1=\"urn:partner.soap.sforce.com\"><n1:username><![CDATA[x<y]]></n1:username></n1:login></env:Body></env:Envelope>";
        assert_eq!(body_operation(prefixed), Some("login"));
        assert_eq!(element_text(prefixed, "username").as_deref(), Some("x<y"));
    }

    #[test]
    fn malformed_input_yields_none_not_a_panic() {
        for xml in [
            "",
            "<",
            "<a",
            "<Body>",
            "<a>&bogus;</a>",
            "<a>&#xFFFFFFFF;</a>",
            "<!--",
            "<![CDATA[",
            "<username>x",
        ] {
            let _ = body_operation(xml);
            let _ = element_text(xml, "username");
            let _ = element_text(xml, "a");
        }
        assert_eq!(element_text("<a>&bogus;</a>", "a"), None);
        assert_eq!(element_text("<username>x", "username"), None);
    }

    #[test]
    fn versions_outside_the_served_range_are_refused() {
        assert_eq!(parse_version("60.0"), Some(60));
        assert_eq!(parse_version("6.0"), None);
        assert_eq!(parse_version("v60.0"), None);
    }
}
