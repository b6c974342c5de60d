//! Operations with real parts: a real Prometheus scraping pgforce with the shipped rules,
//! the Kubernetes manifests built by kubectl, and what `status` shows an operator.

mod kubectl;
mod prometheus;
mod status;
