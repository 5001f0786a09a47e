//! Status conditions: what the observed Deployment means for the hub, decided without I/O.
//!
//! Three conditions, following the Kubernetes API conventions: `Ready` (every desired pod runs
//! the current configuration and is ready), `Progressing` (a rollout or scale is under way),
//! `Degraded` (the operator cannot make the spec real: invalid spec, unusable Secret, API
//! errors). Each carries the hub generation it describes (`observedGeneration`), so
//! `kubectl wait --for=condition=Ready` never trusts a condition written for an older spec.
//!
//! Invariants: `lastTransitionTime` changes only when a condition's status changes; the same
//! inputs give the same conditions, so a status patch after a no-op reconcile changes nothing
//! and triggers no watch event (this is what keeps an invalid hub from hot-looping).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition type: every desired pod is ready and runs the current configuration.
pub const READY: &str = "Ready";
/// Condition type: a rollout or scale is under way.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: the operator cannot reconcile the spec.
pub const DEGRADED: &str = "Degraded";

/// What the reconcile achieved, as input to the conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every object was applied; here is the Deployment as the API server returned it.
    Applied(Box<Deployment>),
    /// The spec (or the Secret it references) cannot work; the message says what to change.
    Invalid(String),
    /// The API server refused or failed a request; the message says which.
    Failed(String),
}

/// Pod counts of the hub's Deployment, in the hub's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollout {
    /// Desired pods.
    pub desired: i32,
    /// Ready pods.
    pub ready: i32,
    /// Pods running the newest template.
    pub updated: i32,
    /// Whether the Deployment controller has seen the newest spec and no pod of an older
    /// template is left.
    pub current: bool,
}

impl Rollout {
    /// Read the counts off a Deployment.
    pub fn of(d: &Deployment) -> Rollout {
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let Some(st) = d.status.as_ref() else {
            return Rollout { desired, ..Rollout::default() };
        };
        let seen = match (st.observed_generation, d.metadata.generation) {
            (Some(observed), Some(generation)) => observed >= generation,
            (_, None) => true,
            (None, Some(_)) => false,
        };
        let updated = st.updated_replicas.unwrap_or(0);
        // `replicas` counts every pod, old templates included (a surge pod, one draining).
        let old_left = st.replicas.unwrap_or(0) > updated;
        Rollout { desired, ready: st.ready_replicas.unwrap_or(0), updated, current: seen && !old_left }
    }

    /// Whether every desired pod is ready on the newest template.
    pub fn complete(&self) -> bool {
        self.current && self.updated >= self.desired && self.ready >= self.desired
    }
}

/// The conditions for `outcome`, keeping transition times from `previous`.
pub fn conditions(generation: i64, outcome: &Outcome, previous: &[Condition], now: &Time) -> Vec<Condition> {
    let c = |type_: &str, status: bool, reason: &str, message: String| {
        condition(type_, status, reason, message, generation, previous, now)
    };
    match outcome {
        Outcome::Applied(sts) => {
            let r = Rollout::of(sts);
            let ready = r.complete();
            let (reason, message) = if ready {
                (
                    "AllReplicasReady",
                    format!("{}/{} pods ready on the current configuration", r.ready, r.desired),
                )
            } else if !r.current || r.updated < r.desired {
                (
                    "RollingOut",
                    format!(
                        "{}/{} pods run the current configuration; rollout in progress",
                        r.updated, r.desired
                    ),
                )
            } else {
                ("PodsNotReady", format!("{}/{} pods ready", r.ready, r.desired))
            };
            vec![
                c(READY, ready, reason, message.clone()),
                c(PROGRESSING, !ready, if ready { "RolloutComplete" } else { reason }, message),
                c(DEGRADED, false, "AsExpected", "every object is applied".into()),
            ]
        }
        Outcome::Invalid(msg) => vec![
            c(READY, false, "InvalidSpec", format!("the current spec cannot run: {msg}")),
            c(PROGRESSING, false, "InvalidSpec", "waiting for the spec to be fixed".into()),
            c(DEGRADED, true, "InvalidSpec", msg.clone()),
        ],
        Outcome::Failed(msg) => {
            // A transient API failure says nothing new about the pods: keep Ready/Progressing
            // as they were (re-stamped with this generation only if they already existed).
            let mut out: Vec<Condition> = [READY, PROGRESSING]
                .iter()
                .map(|t| match find(previous, t) {
                    Some(p) => p.clone(),
                    None => Condition {
                        type_: t.to_string(),
                        status: "Unknown".into(),
                        reason: "ReconcileFailed".into(),
                        message: "not yet reconciled".into(),
                        observed_generation: Some(generation),
                        last_transition_time: now.clone(),
                    },
                })
                .collect();
            out.push(c(DEGRADED, true, "ReconcileFailed", msg.clone()));
            out
        }
    }
}

/// A transition worth a Kubernetes Event: a condition changed status or reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Condition type.
    pub type_: String,
    /// New status (`True`, `False`, `Unknown`).
    pub status: String,
    /// New reason.
    pub reason: String,
    /// New message.
    pub message: String,
}

/// Conditions of `new` whose status or reason differs from `previous`.
pub fn transitions(previous: &[Condition], new: &[Condition]) -> Vec<Transition> {
    new.iter()
        .filter(|n| match find(previous, &n.type_) {
            Some(p) => p.status != n.status || p.reason != n.reason,
            None => true,
        })
        .map(|n| Transition {
            type_: n.type_.clone(),
            status: n.status.clone(),
            reason: n.reason.clone(),
            message: n.message.clone(),
        })
        .collect()
}

/// The condition of `type_` in `conditions`.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether `type_` is `True` in `conditions`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: i64,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last_transition_time = match find(previous, type_) {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => now.clone(),
    };
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: Some(generation),
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::Timestamp;

    fn sts(generation: i64, status: Option<DeploymentStatus>) -> Deployment {
        Deployment {
            metadata: ObjectMeta { generation: Some(generation), ..ObjectMeta::default() },
            spec: Some(DeploymentSpec { replicas: Some(3), ..DeploymentSpec::default() }),
            status,
        }
    }

    /// A status: `total` pods, old templates included.
    fn st(observed: i64, ready: i32, updated: i32, total: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(total),
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            ..DeploymentStatus::default()
        }
    }

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn get<'a>(cs: &'a [Condition], ty: &str) -> &'a Condition {
        find(cs, ty).unwrap()
    }

    #[test]
    fn fresh_deployment_without_status_is_progressing() {
        let cs = conditions(1, &Outcome::Applied(Box::new(sts(1, None))), &[], &t(10));
        assert_eq!(get(&cs, READY).status, "False");
        assert_eq!(get(&cs, READY).reason, "RollingOut");
        assert_eq!(get(&cs, PROGRESSING).status, "True");
        assert_eq!(get(&cs, DEGRADED).status, "False");
        assert!(cs.iter().all(|c| c.observed_generation == Some(1)));
    }

    #[test]
    fn all_pods_ready_on_current_revision_is_ready() {
        let s = sts(2, Some(st(2, 3, 3, 3)));
        let cs = conditions(5, &Outcome::Applied(Box::new(s)), &[], &t(10));
        assert_eq!(get(&cs, READY).status, "True");
        assert_eq!(get(&cs, READY).message, "3/3 pods ready on the current configuration");
        assert_eq!(get(&cs, PROGRESSING).status, "False");
        assert_eq!(get(&cs, PROGRESSING).reason, "RolloutComplete");
    }

    #[test]
    fn stale_observed_generation_is_not_ready_even_with_ready_pods() {
        // The Deployment controller has not seen the new template yet: old pods being ready
        // must not make the new spec Ready.
        let s = sts(3, Some(st(2, 3, 3, 3)));
        let cs = conditions(5, &Outcome::Applied(Box::new(s)), &[], &t(10));
        assert_eq!(get(&cs, READY).status, "False");
        assert_eq!(get(&cs, READY).reason, "RollingOut");
    }

    #[test]
    fn pods_of_an_old_template_left_is_rolling_out() {
        let s = sts(2, Some(st(2, 3, 1, 4)));
        let cs = conditions(5, &Outcome::Applied(Box::new(s)), &[], &t(10));
        assert_eq!(get(&cs, READY).message, "1/3 pods run the current configuration; rollout in progress");
    }

    #[test]
    fn a_surge_pod_or_an_old_one_still_draining_is_rolling_out() {
        // Three pods on the new template and ready, the fourth (old) one not gone yet.
        let s = sts(2, Some(st(2, 3, 3, 4)));
        let cs = conditions(5, &Outcome::Applied(Box::new(s)), &[], &t(10));
        assert_eq!(get(&cs, READY).reason, "RollingOut");
        assert_eq!(get(&cs, PROGRESSING).status, "True");
    }

    #[test]
    fn updated_but_unready_pods_are_reported() {
        let s = sts(2, Some(st(2, 1, 3, 3)));
        let cs = conditions(5, &Outcome::Applied(Box::new(s)), &[], &t(10));
        assert_eq!(get(&cs, READY).reason, "PodsNotReady");
        assert_eq!(get(&cs, READY).message, "1/3 pods ready");
        assert_eq!(get(&cs, PROGRESSING).status, "True");
    }

    #[test]
    fn invalid_spec_is_degraded_with_the_message() {
        let cs = conditions(7, &Outcome::Invalid("spec.x is wrong".into()), &[], &t(10));
        assert_eq!(get(&cs, DEGRADED).status, "True");
        assert_eq!(get(&cs, DEGRADED).reason, "InvalidSpec");
        assert_eq!(get(&cs, DEGRADED).message, "spec.x is wrong");
        assert_eq!(get(&cs, READY).status, "False");
        assert_eq!(get(&cs, PROGRESSING).status, "False");
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let ready = Outcome::Applied(Box::new(sts(2, Some(st(2, 3, 3, 3)))));
        let first = conditions(1, &ready, &[], &t(10));
        let again = conditions(2, &ready, &first, &t(20));
        assert_eq!(get(&again, READY).last_transition_time, t(10));
        assert_eq!(get(&again, READY).observed_generation, Some(2));
        let broken = conditions(3, &Outcome::Invalid("x".into()), &again, &t(30));
        assert_eq!(get(&broken, READY).last_transition_time, t(30));
        assert_eq!(get(&broken, DEGRADED).last_transition_time, t(30));
    }

    #[test]
    fn identical_inputs_give_identical_conditions() {
        // The no-hot-loop guarantee rests on this: a repeated reconcile writes the same status.
        let out = Outcome::Invalid("bad".into());
        let a = conditions(4, &out, &[], &t(10));
        let b = conditions(4, &out, &a, &t(99));
        assert_eq!(a, b);
        assert!(transitions(&a, &b).is_empty());
    }

    #[test]
    fn api_failure_keeps_pod_conditions_and_sets_degraded() {
        let ready = Outcome::Applied(Box::new(sts(2, Some(st(2, 3, 3, 3)))));
        let before = conditions(1, &ready, &[], &t(10));
        let cs = conditions(1, &Outcome::Failed("etcd timeout".into()), &before, &t(20));
        assert_eq!(get(&cs, READY), get(&before, READY));
        assert_eq!(get(&cs, DEGRADED).status, "True");
        assert_eq!(get(&cs, DEGRADED).reason, "ReconcileFailed");
    }

    #[test]
    fn transitions_name_changed_conditions_only() {
        let a = conditions(1, &Outcome::Applied(Box::new(sts(1, None))), &[], &t(1));
        let b = conditions(1, &Outcome::Applied(Box::new(sts(1, Some(st(1, 3, 3, 3))))), &a, &t(2));
        let changed: Vec<_> = transitions(&a, &b).into_iter().map(|t| (t.type_, t.status)).collect();
        assert_eq!(changed, vec![("Ready".into(), "True".into()), ("Progressing".into(), "False".into())]);
    }
}
