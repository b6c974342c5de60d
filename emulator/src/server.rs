//! Starting and stopping the emulator: binding, the router composed per area, and the
//! middleware every request passes through (faults, statistics, API version, session,
//! daily limit and the `Sforce-Limit-Info` header).
//!
//! The TCP listener wraps each connection so a fault can close it without a response
//! ([`ConnKill`]). Connections are served by hyper directly (not `axum::serve`) so HTTP/1.1
//! responses can carry Salesforce's header-name spellings ([`header_case`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, Request as HttpRequest, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::util::MapResponseLayer;
use tower::ServiceExt;

use super::context::{ApiVersion, AuthContext};
use super::error::{ApiError, ErrorCode};
use super::faults::FaultKind;
use super::latency;
use super::session;
use super::state::AppState;
use super::txn::{self, Txn, TxnInfo};
use super::{admin, auth, header_case, request_log, rest};

/// Composes the whole router. The data API (`/services/data/vNN.N/...`) gets the version,
/// session and limit middleware; other areas merge their `routes()` into `data` below.
pub fn router(state: AppState) -> Router {
    // Areas owned by other modules are merged here, e.g.
    // `.merge(super::query::routes()).merge(super::collections::routes())`.
    let data = rest::routes()
        .merge(super::query::routes())
        .merge(super::collections::routes())
        .merge(super::composite::routes())
        .merge(super::bulk::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), data_api));
    let public = Router::new()
        .merge(auth::routes())
        .merge(super::oauth_web::routes())
        .merge(super::soap::routes())
        .merge(rest::public_routes())
        .merge(data)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            faults_and_stats,
        ));
    let inner = Router::new()
        .merge(admin::routes())
        .merge(public)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_log::log_request,
        ))
        .with_state(state);
    Router::new()
        .fallback_service(inner)
        .layer(middleware::map_request(trim_trailing_slash))
}

/// `/a/b/` → `/a/b` so both spellings route the same (simple-salesforce sends both).
async fn trim_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(p) = pq.parse() {
            parts.path_and_query = Some(p);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// 404 NOT_FOUND for unknown data resources.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// Faults (latency, errors, dropped connections, token expiry) and per-family statistics.
async fn faults_and_stats(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let counted = path.starts_with("/services/data/v");
    state.stats.record(&method, &path, counted);
    let kill = req
        .extensions()
        .get::<ConnectInfo<ConnKill>>()
        .map(|ConnectInfo(k)| k.clone());
    for fault in state.faults.check(&method, &path) {
        if let Some(resp) = apply_fault(&state, &fault, kill.as_ref()).await {
            return resp;
        }
    }
    latency::charge_request(&state.latency, &method, &path).await;
    next.run(req).await
}

/// Applies one fault; `Some` ends the request with that response.
async fn apply_fault(
    state: &AppState,
    fault: &FaultKind,
    kill: Option<&ConnKill>,
) -> Option<Response> {
    match fault {
        FaultKind::Latency { ms } => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            None
        }
        FaultKind::ExpireTokens => {
            state.tokens.expire_all();
            None
        }
        FaultKind::HttpStatus { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let code = if status == StatusCode::SERVICE_UNAVAILABLE {
                ErrorCode::ServerUnavailable
            } else {
                ErrorCode::UnknownException
            };
            let msg = "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-123456789)";
            Some(
                ApiError::with_status(status, vec![super::error::FieldError::new(code, msg)])
                    .into_response(),
            )
        }
        FaultKind::DropConnection => {
            if let Some(kill) = kill {
                kill.kill();
            }
            Some(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        FaultKind::UnableToLockRow => Some(
            ApiError::new(
                ErrorCode::UnableToLockRow,
                "unable to obtain exclusive access to this record or 1 records: 001000000000000AAA",
            )
            .into_response(),
        ),
        FaultKind::RequestLimitExceeded => Some(ApiError::limit_exceeded().into_response()),
        FaultKind::BulkJobFailed { .. }
        | FaultKind::CdcGap
        | FaultKind::PubsubDropStream { .. }
        | FaultKind::PubsubSlow { .. } => None,
    }
}

/// Version check, session check, daily limit, and the `Sforce-Limit-Info` header.
async fn data_api(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let segment = req.uri().path().split('/').nth(3).unwrap_or_default();
    let Some(version) = ApiVersion::parse(segment) else {
        return ApiError::not_found().into_response();
    };
    let now = state.clock.now();
    let Some(session) = session::bearer(req.headers()).and_then(|t| state.tokens.session(t, now))
    else {
        return ApiError::invalid_session().into_response();
    };
    if state.limits.use_api_request(now).is_none() {
        return with_limit_header(&state, ApiError::limit_exceeded().into_response());
    }
    let client = req
        .headers()
        .get("sforce-call-options")
        .and_then(|v| v.to_str().ok())
        .and_then(txn::call_options_client);
    let origin = txn::change_origin("rest", &version.number(), client);
    let txn = Txn::new(
        state.store.change_sink(),
        TxnInfo::new(origin, session.user_id),
    );
    req.extensions_mut().insert(version);
    req.extensions_mut().insert(AuthContext {
        session,
        txn: txn.clone(),
    });
    let resp = next.run(req).await;
    txn.commit();
    with_limit_header(&state, resp)
}

fn with_limit_header(state: &AppState, mut resp: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&state.limits.header_value()) {
        resp.headers_mut().insert("sforce-limit-info", v);
    }
    resp
}

/// Lets a handler close its connection without answering (the drop-connection fault).
#[derive(Debug, Clone, Default)]
pub struct ConnKill(Arc<AtomicBool>);

impl ConnKill {
    /// Makes every further read and write on the connection fail, so it is dropped.
    pub fn kill(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn killed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A TCP stream that fails once its [`ConnKill`] fired.
#[derive(Debug)]
pub struct KillableStream {
    inner: TcpStream,
    kill: ConnKill,
}

fn killed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by fault injection",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.kill.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.kill.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.kill.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TCP listener handing out [`KillableStream`]s.
#[derive(Debug)]
pub struct KillableListener(pub TcpListener);

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((inner, addr)) => {
                    let _ = inner.set_nodelay(true);
                    let stream = KillableStream {
                        inner,
                        kill: ConnKill::default(),
                    };
                    return (stream, addr);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnKill {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.io().kill.clone()
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then lets open connections finish.
///
/// HTTP/1.1 responses carry Salesforce's header-name spellings ([`header_case`]);
/// HTTP/2 (prior knowledge) is served too, with lowercase names as HTTP/2 requires.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    shutdown: oneshot::Receiver<()>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        header_case::init().await;
        let router = router.layer(MapResponseLayer::new(header_case::apply::<Body>));
        let mut listener = KillableListener(listener);
        let graceful = GracefulShutdown::new();
        let mut builder = ConnBuilder::new(TokioExecutor::new());
        builder.http1().title_case_headers(true);
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                (stream, _addr) = listener.accept() => {
                    let kill = stream.kill.clone();
                    let service = TowerToHyperService::new(router.clone().map_request(
                        move |mut req: HttpRequest<Incoming>| {
                            req.extensions_mut().insert(ConnectInfo(kill.clone()));
                            req
                        },
                    ));
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "emulator connection ended with an error");
                        }
                    });
                }
                _ = &mut shutdown => break,
            }
        }
        graceful.shutdown().await;
    })
}

/// Methods a data resource allows, for 405 answers.
pub fn method_not_allowed(method: &Method, allowed: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
    )
}
