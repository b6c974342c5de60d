//! The `eventbus.v1.PubSub` service: GetTopic, GetSchema, Subscribe (see [`super::subscribe`]);
//! Publish and PublishStream refuse Change Data Capture topics (they are read-only);
//! ManagedSubscribe is not implemented.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::proto::pub_sub_server::PubSub;
use super::proto::{
    FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse, PublishRequest,
    PublishResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};
use super::{auth, errors, subscribe};
use crate::cdc::Topic;
use crate::state::AppState;

/// A boxed response stream.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The service; cheap to clone.
#[derive(Debug, Clone)]
pub struct PubSubService {
    state: AppState,
}

impl PubSubService {
    /// A service over the emulator's state.
    pub fn new(state: AppState) -> PubSubService {
        PubSubService { state }
    }
}

/// The refusal of publishing to a topic.
fn publish_denied(topic: &str, rpc_id: &str) -> Status {
    errors::status(
        Code::PermissionDenied,
        errors::PUBLISH_DENIED,
        &format!("Publishing to the topic {topic} isn't allowed: change events are published by Salesforce only."),
        rpc_id,
    )
}

#[tonic::async_trait]
impl PubSub for PubSubService {
    type SubscribeStream = BoxStream<FetchResponse>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let rpc_id = errors::rpc_id();
        let session = auth::check(&self.state, request.metadata(), &rpc_id)?;
        let stream = subscribe::start(self.state.clone(), session, request.into_inner(), rpc_id);
        Ok(Response::new(stream))
    }

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        let rpc_id = errors::rpc_id();
        auth::check(&self.state, request.metadata(), &rpc_id)?;
        let id = request.into_inner().schema_id;
        if id.trim().is_empty() {
            return Err(errors::invalid(
                "Schema validation failed. The schema ID can't be blank.",
                &rpc_id,
            ));
        }
        let schema = self.state.cdc.schema_by_id(&id).ok_or_else(|| {
            errors::status(
                Code::NotFound,
                errors::INVALID_REQUEST,
                &format!("The schema with ID {id} wasn't found."),
                &rpc_id,
            )
        })?;
        Ok(Response::new(SchemaInfo {
            schema_json: schema.json.clone(),
            schema_id: schema.id.clone(),
            rpc_id,
        }))
    }

    async fn get_topic(
        &self,
        request: Request<TopicRequest>,
    ) -> Result<Response<TopicInfo>, Status> {
        let rpc_id = errors::rpc_id();
        auth::check(&self.state, request.metadata(), &rpc_id)?;
        let name = request.into_inner().topic_name;
        let org = self.state.org_id.to_string();
        let topic = self
            .state
            .cdc
            .topic(&name)
            .ok_or_else(|| errors::topic_not_found(&org, &name, &rpc_id))?;
        let schema_id = match topic {
            Topic::All => String::new(),
            Topic::Entity(_, schema) => schema.id.clone(),
        };
        Ok(Response::new(TopicInfo {
            topic_name: name,
            tenant_guid: org,
            can_publish: false,
            can_subscribe: true,
            schema_id,
            rpc_id,
        }))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let rpc_id = errors::rpc_id();
        auth::check(&self.state, request.metadata(), &rpc_id)?;
        let topic = request.into_inner().topic_name;
        if self.state.cdc.topic(&topic).is_none() {
            let org = self.state.org_id.to_string();
            return Err(errors::topic_not_found(&org, &topic, &rpc_id));
        }
        Err(publish_denied(&topic, &rpc_id))
    }

    type PublishStreamStream = BoxStream<PublishResponse>;

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let rpc_id = errors::rpc_id();
        auth::check(&self.state, request.metadata(), &rpc_id)?;
        let mut inbound = request.into_inner();
        let topic = match inbound.message().await {
            Ok(Some(r)) => r.topic_name,
            Ok(None) => String::new(),
            Err(e) => return Err(e),
        };
        Err(publish_denied(&topic, &rpc_id))
    }

    type ManagedSubscribeStream = BoxStream<ManagedFetchResponse>;

    async fn managed_subscribe(
        &self,
        request: Request<Streaming<ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        let rpc_id = errors::rpc_id();
        auth::check(&self.state, request.metadata(), &rpc_id)?;
        Err(errors::status(
            Code::Unimplemented,
            errors::INVALID_REQUEST,
            "ManagedSubscribe is not available in the emulator.",
            &rpc_id,
        ))
    }
}
