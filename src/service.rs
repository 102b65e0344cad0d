//! What the API's handlers ask for, apart from HTTP: publishing an event,
//! reading it back with its deliveries, a test send, a manual retry,
//! recovering what failed, and sending an event again.
//!
//! Handlers parse and authenticate, call one of these, and turn the result
//! into an answer; the steps in between (the catalog check, the fan-out
//! budget, waking the engine) live here, once, and are tested in process.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::delivery::fanout;
use crate::delivery::operational::Notice;
use crate::delivery::operational::Rates;
use crate::delivery::{Engine, RetrySchedule};
use crate::model::delivery::{Delivery, DeliveryStatus, HourStats, hourly};
use crate::model::endpoint::{ClientTls, Endpoint, EndpointStatus};
use crate::model::event::{Event, validate_external_id};
use crate::model::event_type::{TEST_EVENT_TYPE, is_operational, validate_name};
use crate::model::ids::{DeliveryId, EndpointId, TenantId};
use crate::model::tenant::Tenant;
use crate::store::{DeliveryFilter, FANOUT_CHUNK, PublishOutcome, Store, StoreError};
use crate::validation::FieldError;

/// Most deliveries an endpoint's 24-hour figures are computed from.
pub const STATS_DELIVERIES: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A field of the request breaks a rule.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A field is well formed but asks for what cannot be done (a time in
    /// the future, an endpoint that does not subscribe).
    #[error("{0}")]
    Unprocessable(FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An event as a producer publishes it.
pub struct NewEvent {
    pub event_type: String,
    pub data: Value,
    /// The producer's own id; publishing it again creates nothing new.
    pub id: Option<String>,
}

/// One delivery of an event, as the event's answer lists it.
pub struct DeliveryRef {
    pub endpoint_id: EndpointId,
    pub delivery_id: DeliveryId,
    pub status: DeliveryStatus,
}

/// An event with its deliveries.
pub struct Published {
    pub event: Event,
    pub deliveries: Vec<DeliveryRef>,
    /// Its id or idempotency key was published before: nothing new was
    /// created, and this is the first event.
    pub duplicate: bool,
}

/// The use cases, over the store and the engine.
pub struct Service {
    store: Store,
    engine: Engine,
    schedule: RetrySchedule,
}

impl Service {
    pub fn new(store: Store, engine: Engine, schedule: RetrySchedule) -> Self {
        Self {
            store,
            engine,
            schedule,
        }
    }
    /// An endpoint's in-flight limit now, where its receiver's answers have
    /// brought it below its maximum.
    pub fn in_flight_limit(&self, endpoint: &EndpointId) -> Option<usize> {
        self.engine.in_flight_limit(endpoint)
    }

    /// The maximum in flight of an endpoint without its own.
    pub fn default_max_in_flight(&self) -> usize {
        self.engine.default_max_in_flight()
    }

    /// Publishes an event to every endpoint of `tenant` subscribed to its
    /// type; durable when it returns.
    pub async fn publish(
        &self,
        tenant: &TenantId,
        new: NewEvent,
        idempotency_key: Option<&str>,
    ) -> Result<Published, ServiceError> {
        validate_name(&new.event_type).map_err(|e| FieldError::new("type", e))?;
        if is_operational(&new.event_type) {
            return Err(FieldError::new(
                "type",
                format!(
                    "'{}' is one of the gateway's own operational events; only the gateway publishes them",
                    new.event_type
                ),
            )
            .into());
        }
        if self
            .store
            .get_event_type(tenant, &new.event_type)
            .await?
            .is_none()
        {
            return Err(FieldError::new(
                "type",
                format!("'{}' is not in the event type catalog", new.event_type),
            )
            .into());
        }
        if let Some(id) = &new.id {
            validate_external_id("id", id)?;
        }
        if let Some(key) = idempotency_key {
            validate_external_id("Idempotency-Key", key)?;
        }
        let event = Event::new(*tenant, new.id, &new.event_type, new.data);
        // A publish to thousands of endpoints waits for its share of the
        // fan-out budget before building its deliveries; one to no
        // subscriber (or few) never waits.
        let subscribers = self
            .store
            .with_endpoints(tenant, |endpoints| match endpoints.len() > FANOUT_CHUNK {
                true => fanout::count(&event.event_type, endpoints.values().map(|e| e.as_ref())),
                false => endpoints.len(),
            })
            .await?;
        let reserved = self.store.reserve_fan_out(subscribers).await;
        let deliveries = self
            .store
            .with_endpoints(tenant, |endpoints| {
                let endpoints = endpoints.values().map(|e| e.as_ref());
                fanout::deliveries_for(&event, endpoints, &self.schedule)
            })
            .await?;
        let queued = deliveries.iter().filter(|d| d.next_retry.is_some()).count();
        // A new event's deliveries are the ones just written: no need to
        // read them back for the answer.
        let fresh: Vec<DeliveryRef> = deliveries.iter().map(DeliveryRef::of).collect();
        let outcome = self
            .store
            .publish_reserved(event, deliveries, idempotency_key, reserved)
            .await?;
        match outcome {
            PublishOutcome::Created(event) => {
                self.engine.queued(queued);
                metrics::counter!("hookgate_events_published_total").increment(1);
                Ok(Published {
                    event,
                    deliveries: fresh,
                    duplicate: false,
                })
            }
            PublishOutcome::Duplicate(event) => Ok(Published {
                deliveries: self.deliveries_of(&event).await?,
                event,
                duplicate: true,
            }),
        }
    }

    /// A stored event with the current status of each of its deliveries.
    pub async fn event(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Published>, ServiceError> {
        let Some(event) = self.store.get_event(tenant, id).await? else {
            return Ok(None);
        };
        Ok(Some(Published {
            deliveries: self.deliveries_of(&event).await?,
            event,
            duplicate: false,
        }))
    }

    async fn deliveries_of(&self, event: &Event) -> Result<Vec<DeliveryRef>, StoreError> {
        let list = self
            .store
            .event_deliveries(&event.tenant_id, &event.id)
            .await?;
        let mut deliveries = Vec::with_capacity(list.len());
        for (endpoint_id, delivery_id) in list {
            if let Some(d) = self
                .store
                .get_delivery(&event.tenant_id, &endpoint_id, &delivery_id)
                .await?
            {
                deliveries.push(DeliveryRef::of(&d));
            }
        }
        Ok(deliveries)
    }

    /// Sends the example of `event_type` (the built-in test type when
    /// `None`) to `endpoint` now, even while it is paused, and logs it.
    pub async fn send_test(
        &self,
        tenant: &Tenant,
        endpoint: &Endpoint,
        event_type: Option<String>,
    ) -> Result<Delivery, ServiceError> {
        let name = event_type.unwrap_or_else(|| TEST_EVENT_TYPE.to_string());
        let Some(event_type) = self.store.get_event_type(&tenant.id, &name).await? else {
            return Err(FieldError::new(
                "event_type",
                format!("'{name}' is not in the event type catalog"),
            )
            .into());
        };
        let data = event_type.example.unwrap_or_else(|| serde_json::json!({}));
        Ok(self.engine.send_test(tenant, endpoint, &name, data).await?)
    }

    /// Redelivers now, outside the schedule.
    pub async fn retry(
        &self,
        tenant: &Tenant,
        endpoint: &Endpoint,
        delivery: &Delivery,
    ) -> Result<Delivery, ServiceError> {
        Ok(self.engine.retry_now(tenant, endpoint, delivery).await?)
    }
}

impl Service {
    /// Queues again every delivery of `endpoint` that ended `failed` between
    /// `since` and `until` (now when `None`), and makes the endpoint active
    /// again (the gateway may have disabled it, and a paused endpoint's
    /// deliveries would be skipped); returns how many were queued.
    pub async fn recover(
        &self,
        endpoint: &Endpoint,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<usize, ServiceError> {
        let now = crate::time::now();
        if since > now {
            return Err(ServiceError::Unprocessable(FieldError::new(
                "since",
                "must not be in the future",
            )));
        }
        let until = until.unwrap_or(now);
        if until < since {
            return Err(ServiceError::Unprocessable(FieldError::new(
                "until",
                "must not be before since",
            )));
        }
        let (tenant, id) = (endpoint.tenant_id, endpoint.id);
        let mut was_disabled = false;
        let endpoint = self
            .store
            .update_endpoint(&tenant, &id, |e| {
                was_disabled = e.status == EndpointStatus::Disabled;
                if e.status != EndpointStatus::Active {
                    e.status = EndpointStatus::Active;
                    e.disabled_reason = None;
                    e.updated_at = now;
                }
                Ok::<_, StoreError>(())
            })
            .await?;
        let recovered = self
            .store
            .recover_deliveries(
                &tenant,
                &endpoint.id,
                (since, until),
                now,
                endpoint.ordering.is_fifo(),
            )
            .await?;
        self.engine.queued(recovered);
        if was_disabled {
            let reason = format!("recovered: {recovered} failed deliveries queued again");
            self.engine
                .announce(Notice::recovered(&endpoint, &reason))
                .await;
        }
        Ok(recovered)
    }

    /// Checks a client certificate for mutual TLS: its PEM's shape, then
    /// that a TLS client can use it.
    pub fn check_client_tls(&self, tls: &ClientTls) -> Result<(), ServiceError> {
        tls.validate().map_err(ServiceError::Unprocessable)?;
        self.engine.check_client_tls(tls).map_err(|reason| {
            ServiceError::Unprocessable(FieldError::new(
                "tls_client",
                format!("the certificate and key cannot be used: {reason}"),
            ))
        })
    }

    /// The endpoint's attempts of the last 24 hours, hour by hour, from the
    /// deliveries made in that time (the newest [`STATS_DELIVERIES`] at
    /// most); with whether every such delivery was read.
    pub async fn endpoint_stats(
        &self,
        endpoint: &Endpoint,
    ) -> Result<(Vec<HourStats>, bool), ServiceError> {
        let now = crate::time::now();
        let since = now - chrono::Duration::hours(24);
        let mut read = Vec::new();
        let mut cursor = None;
        let complete = loop {
            let page = self
                .store
                .list_deliveries(
                    &endpoint.tenant_id,
                    &endpoint.id,
                    &DeliveryFilter::default(),
                    cursor.as_ref(),
                    1000,
                )
                .await?;
            let before = page.items.iter().any(|d| d.created_at < since);
            read.extend(page.items.into_iter().filter(|d| d.created_at >= since));
            if before || page.next_cursor.is_none() {
                break true;
            }
            if read.len() >= STATS_DELIVERIES {
                break false;
            }
            cursor = read.last().map(|d| d.id);
        };
        Ok((hourly(&read, since, now), complete))
    }

    /// Entries waiting in the queue and the attempts' recent rates.
    pub fn delivery_stats(&self) -> (i64, Rates) {
        self.engine.stats()
    }

    /// Announces that a disabled endpoint is active again, for `reason`.
    pub async fn announce_recovered(&self, endpoint: &Endpoint, reason: &str) {
        self.engine
            .announce(Notice::recovered(endpoint, reason))
            .await;
    }

    /// Sends a stored event again, as a new delivery, to `only` or else to
    /// every active endpoint subscribed to its type now; returns the new
    /// deliveries. `NotFound` if the event is gone (retention).
    pub async fn redeliver(
        &self,
        tenant: &TenantId,
        event_id: &str,
        only: Option<&Endpoint>,
    ) -> Result<Vec<DeliveryRef>, ServiceError> {
        let event = self
            .store
            .get_event(tenant, event_id)
            .await?
            .ok_or(StoreError::NotFound("event"))?;
        // Each target with whether it keeps its deliveries in order.
        let targets: Vec<(EndpointId, bool)> = match only {
            Some(e) => {
                if !crate::model::event_type::subscribed(&e.events, &event.event_type) {
                    return Err(ServiceError::Unprocessable(FieldError::new(
                        "webhook_id",
                        format!("the endpoint does not subscribe to '{}'", event.event_type),
                    )));
                }
                if e.status != EndpointStatus::Active {
                    return Err(StoreError::Conflict(
                        "the endpoint is not active: resume it first".into(),
                    )
                    .into());
                }
                vec![(e.id, e.ordering.is_fifo())]
            }
            None => {
                self.store
                    .with_endpoints(tenant, |endpoints| {
                        endpoints
                            .values()
                            .filter(|e| e.status == EndpointStatus::Active)
                            .filter(|e| {
                                crate::model::event_type::subscribed(&e.events, &event.event_type)
                            })
                            .map(|e| (e.id, e.ordering.is_fifo()))
                            .collect()
                    })
                    .await?
            }
        };
        let now = crate::time::now();
        let deliveries: Vec<Delivery> = targets
            .into_iter()
            .map(|(endpoint, fifo)| {
                let mut d = Delivery::new(endpoint, &event.id, &event.event_type, now);
                d.next_retry = Some(now);
                d.fifo = fifo;
                d
            })
            .collect();
        for chunk in deliveries.chunks(FANOUT_CHUNK) {
            self.store.add_deliveries(tenant, &event.id, chunk).await?;
            self.engine.queued(chunk.len());
        }
        Ok(deliveries.iter().map(DeliveryRef::of).collect())
    }
}

impl DeliveryRef {
    fn of(d: &Delivery) -> Self {
        Self {
            endpoint_id: d.endpoint_id,
            delivery_id: d.id,
            status: d.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::delivery::EngineSettings;
    use crate::delivery::sender::Sender;
    use crate::model::endpoint::EndpointStatus;
    use crate::plugins::compile::Compiler;
    use crate::plugins::{Limits, PluginHost, Plugins};
    use crate::store::PluginQuota;
    use crate::store::test_support::{stored_tenant, temp_store};
    use crate::target_guard::TargetGuard;

    /// A service on a temp store whose engine delivers nowhere: the guard
    /// refuses every private address, and the endpoints point at loopback.
    async fn service(store: &Store) -> Service {
        let sender =
            Sender::new(TargetGuard::default(), Duration::from_secs(1), None, None).unwrap();
        let quota = PluginQuota { count: 1, bytes: 1 };
        let host = PluginHost::new(Limits::default()).unwrap();
        let plugins = Plugins::new(host, Compiler::in_process(), store.clone(), quota);
        let schedule: RetrySchedule = "0s,1h".parse().unwrap();
        let settings = EngineSettings {
            schedule: schedule.clone(),
            jitter: 0.0,
            workers: 4,
            endpoint_concurrency: 1,
            tenant_concurrency: 4,
            retention_days: 30,
        };
        let runtime = tokio::runtime::Handle::current();
        let engine = Engine::start(store.clone(), sender, plugins, settings, runtime)
            .await
            .unwrap();
        Service::new(store.clone(), engine, schedule)
    }

    fn new_event(event_type: &str, id: Option<&str>) -> NewEvent {
        NewEvent {
            event_type: event_type.into(),
            data: serde_json::json!({"n": 1}),
            id: id.map(String::from),
        }
    }

    #[tokio::test]
    async fn a_publish_makes_one_delivery_per_subscriber_once() {
        let (store, _dir) = temp_store();
        let service = service(&store).await;
        let tenant = stored_tenant(&*store, "t").await;
        let mut subscribed = Endpoint::sample(tenant.id, "subscribed");
        subscribed.url = "https://127.0.0.1:9/hook".into();
        let mut other = Endpoint::sample(tenant.id, "other");
        other.events = vec!["webhook.test".into()];
        // `webhook.test` is in every catalog.
        store.create_endpoint(&subscribed).await.unwrap();
        store.create_endpoint(&other).await.unwrap();

        let first = service
            .publish(&tenant.id, new_event("a.b", Some("ord_1")), None)
            .await
            .unwrap();
        assert!(!first.duplicate);
        let endpoints: Vec<EndpointId> = first.deliveries.iter().map(|d| d.endpoint_id).collect();
        assert_eq!(endpoints, [subscribed.id], "only the subscriber gets one");
        let stored = store
            .get_delivery(&tenant.id, &subscribed.id, &first.deliveries[0].delivery_id)
            .await
            .unwrap();
        assert!(stored.is_some(), "durable when publish returns");

        let again = service
            .publish(&tenant.id, new_event("a.b", Some("ord_1")), None)
            .await
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(again.event.id, first.event.id);
        assert_eq!(
            again.deliveries[0].delivery_id, first.deliveries[0].delivery_id,
            "nothing new was created"
        );
        let read = service.event(&tenant.id, "ord_1").await.unwrap().unwrap();
        assert_eq!(read.deliveries.len(), 1);
    }

    #[tokio::test]
    async fn a_publish_outside_the_catalog_or_with_a_bad_key_stores_nothing() {
        let (store, _dir) = temp_store();
        let service = service(&store).await;
        let tenant = stored_tenant(&*store, "t").await;
        let field = |e: ServiceError| match e {
            ServiceError::Invalid(f) => f.field,
            other => panic!("{other}"),
        };
        let unknown = service
            .publish(&tenant.id, new_event("not.there", None), None)
            .await;
        assert_eq!(field(unknown.err().unwrap()), "type");
        let bad_key = service
            .publish(&tenant.id, new_event("a.b", None), Some("has space"))
            .await;
        assert_eq!(field(bad_key.err().unwrap()), "Idempotency-Key");
        assert_eq!(store.queue_len().await.unwrap(), 0, "nothing was queued");
    }

    #[tokio::test]
    async fn a_test_send_is_logged_even_while_paused_and_names_a_missing_type() {
        let (store, _dir) = temp_store();
        let service = service(&store).await;
        let tenant = stored_tenant(&*store, "t").await;
        let mut endpoint = Endpoint::sample(tenant.id, "paused");
        endpoint.status = EndpointStatus::Paused;
        endpoint.url = "https://127.0.0.1:9/hook".into();
        store.create_endpoint(&endpoint).await.unwrap();

        let missing = service
            .send_test(&tenant, &endpoint, Some("not.there".into()))
            .await;
        assert!(matches!(missing, Err(ServiceError::Invalid(f)) if f.field == "event_type"));

        let sent = service
            .send_test(&tenant, &endpoint, Some("a.b".into()))
            .await
            .unwrap();
        assert!(sent.test);
        let attempt = sent.attempts.last().expect("an attempt was made");
        assert!(!attempt.success, "the guard refuses loopback");
        let logged = store
            .get_delivery(&tenant.id, &endpoint.id, &sent.id)
            .await
            .unwrap();
        assert!(logged.is_some(), "logged like any delivery");
    }
}
