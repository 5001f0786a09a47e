//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas are safe.
//!
//! One replica holds the Lease and reconciles; the others poll it and take over when its
//! `renewTime` is older than `leaseDurationSeconds`. Every write is a compare-and-swap on the
//! Lease's `resourceVersion`, so two candidates can never both believe they won.
//!
//! Assumptions: replicas' clocks agree to well within the lease duration (expiry is judged by
//! comparing the holder's `renewTime` with the local clock). Caveats: a leader that cannot renew
//! for a whole lease duration must stop reconciling; `main` does that by shutting the controller
//! down and exiting, so the pod restarts as a standby.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;

/// Leader-election settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews (well below `lease_duration`).
    pub renew_every: Duration,
}

/// What a call to [`LeaderElector::try_acquire_or_renew`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This replica holds the Lease.
    Leading,
    /// Another replica holds it.
    Following {
        /// The current holder.
        holder: String,
    },
}

/// Acquires and renews one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
}

impl LeaderElector {
    /// An elector for `cfg`.
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        LeaderElector { api: Api::namespaced(client, &cfg.namespace), cfg }
    }

    /// The settings.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Take the Lease if it is free or expired, renew it if held; report who leads.
    pub async fn try_acquire_or_renew(&self) -> Result<Leadership, kube::Error> {
        let now = Timestamp::now();
        let me = &self.cfg.identity;
        let Some(lease) = self.api.get_opt(&self.cfg.name).await? else {
            let fresh = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &fresh).await {
                Ok(_) => Ok(Leadership::Leading),
                Err(e) if is_conflict(&e) => self.holder().await,
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == *me {
            let acquired = spec.acquire_time.map(|t| t.0).unwrap_or(now);
            self.spec(acquired, now, transitions)
        } else if holder.is_empty() || expired(&spec, now) {
            self.spec(now, now, transitions + 1)
        } else {
            return Ok(Leadership::Following { holder });
        };
        let mut updated = lease;
        updated.spec = Some(next);
        // `replace` sends our resourceVersion: if anyone wrote the Lease since we read it, this
        // fails with 409 and we lost the race.
        match self.api.replace(&self.cfg.name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(Leadership::Leading),
            Err(e) if is_conflict(&e) => self.holder().await,
            Err(e) => Err(e),
        }
    }

    /// Give the Lease up (on graceful shutdown), so a standby takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else { return Ok(()) };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
        match self.api.replace(&self.cfg.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            // Someone else already wrote it: nothing of ours to release.
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn holder(&self) -> Result<Leadership, kube::Error> {
        let lease = self.api.get(&self.cfg.name).await?;
        let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
        Ok(if holder == self.cfg.identity { Leadership::Leading } else { Leadership::Following { holder } })
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.cfg.lease_duration.as_secs().max(1) as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else { return true };
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    renewed + duration < now
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_expiry_uses_renew_time_and_duration() {
        let now = Timestamp::from_second(1_000).unwrap();
        let spec = |renew: i64| LeaseSpec {
            renew_time: Some(MicroTime(Timestamp::from_second(renew).unwrap())),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        assert!(!expired(&spec(990), now));
        assert!(expired(&spec(980), now));
        assert!(expired(&LeaseSpec::default(), now), "a Lease never renewed is free");
    }
}
