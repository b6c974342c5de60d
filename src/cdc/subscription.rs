//! One Subscribe stream: the FetchRequests going out (the first names the topic and where
//! to start; later ones only add flow-control credit) and the FetchResponses coming back.
//!
//! A stream is cheap and disposable: when it breaks, the source drops it and opens a new
//! one from the position it last returned ([`From::After`]), so no state here needs to
//! survive a failure.

use futures::channel::mpsc;
use secrecy::ExposeSecret;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

use super::flow::Flow;
use super::proto::pub_sub_client::PubSubClient;
use super::proto::{FetchRequest, FetchResponse, ReplayPreset};
use crate::salesforce::client::SessionCredentials;

/// Where a new stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    Latest,
    Earliest,
    /// After this replay id (CUSTOM).
    After(Vec<u8>),
}

/// An open Subscribe stream.
pub struct Subscription {
    requests: mpsc::UnboundedSender<FetchRequest>,
    responses: Streaming<FetchResponse>,
    flow: Flow,
    topic: String,
}

impl Subscription {
    /// Subscribes to `topic` from `from`, asking for `batch_size` events first.
    pub async fn open(
        rpc: &mut PubSubClient<Channel>,
        credentials: &SessionCredentials,
        topic: &str,
        from: &From,
        batch_size: i32,
    ) -> Result<Subscription, Status> {
        let mut flow = Flow::new(batch_size);
        let (preset, replay_id) = match from {
            From::Latest => (ReplayPreset::Latest, Vec::new()),
            From::Earliest => (ReplayPreset::Earliest, Vec::new()),
            From::After(id) => (ReplayPreset::Custom, id.clone()),
        };
        let first = FetchRequest {
            topic_name: topic.to_string(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: flow.initial(),
            auth_refresh: String::new(),
        };
        let (requests, outgoing) = mpsc::unbounded();
        requests
            .unbounded_send(first)
            .map_err(|_| Status::internal("the request channel closed before subscribing"))?;
        let request = authorized(Request::new(outgoing), credentials)?;
        let responses = rpc.subscribe(request).await?.into_inner();
        Ok(Subscription {
            requests,
            responses,
            flow,
            topic: topic.to_string(),
        })
    }

    /// Sends more flow-control credit if the server owes half a batch or less.
    pub fn top_up(&mut self) -> Result<(), Status> {
        let Some(n) = self.flow.top_up() else {
            return Ok(());
        };
        let more = FetchRequest {
            topic_name: self.topic.clone(),
            num_requested: n,
            ..FetchRequest::default()
        };
        self.requests
            .unbounded_send(more)
            .map_err(|_| Status::unavailable("the subscribe stream is closed"))
    }

    /// The next response; the server ending the stream is reported as UNAVAILABLE (it is
    /// resumed like any drop). Cancel-safe: dropping the future loses no response.
    pub async fn next(&mut self) -> Result<FetchResponse, Status> {
        match self.responses.message().await? {
            Some(r) => {
                self.flow.on_response(r.pending_num_requested);
                Ok(r)
            }
            None => Err(Status::unavailable("the server ended the subscribe stream")),
        }
    }
}

/// `message` with the Pub/Sub API's auth metadata: `accesstoken`, `instanceurl`,
/// `tenantid`. A token that cannot be sent as metadata is reported without its value.
pub fn authorized<T>(
    message: Request<T>,
    credentials: &SessionCredentials,
) -> Result<Request<T>, Status> {
    let mut request = message;
    let invalid =
        |what: &str| Status::unauthenticated(format!("the {what} is not valid gRPC metadata"));
    let token = MetadataValue::try_from(credentials.access_token().expose_secret())
        .map_err(|_| invalid("access token"))?;
    let instance = MetadataValue::try_from(credentials.instance_url.as_str().trim_end_matches('/'))
        .map_err(|_| invalid("instance URL"))?;
    let tenant =
        MetadataValue::try_from(credentials.org_id.as_str()).map_err(|_| invalid("org id"))?;
    let md = request.metadata_mut();
    md.insert("accesstoken", token);
    md.insert("instanceurl", instance);
    md.insert("tenantid", tenant);
    Ok(request)
}
