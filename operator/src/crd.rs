//! The `SocketIOHub` custom resource: spec, status and their schema.
//!
//! The Rust types here are the single source of the CRD: `crdgen` writes `crds/` from them, and
//! CI fails when the committed YAML differs. Schema attributes (types, ranges, patterns) and CEL
//! rules refuse nonsense at `kubectl apply`; whatever only the operator can judge (a referenced
//! Secret's contents, cross-field checks on API servers without CEL) is reported as a `Degraded`
//! condition by `reconcile`.
//!
//! Invariants: every spec field has a default or is optional, so `spec: {}` is a valid hub; no
//! default is an empty string (older API servers reject empty strings in applied fields).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the CRD.
pub const GROUP: &str = "socketio.dev";
/// Version of the CRD.
pub const VERSION: &str = "v1alpha1";

/// Image used when `spec.image` is not set (the operator's `--default-image` overrides it).
pub const DEFAULT_IMAGE: &str = "ghcr.io/socketio-hub/socketio-hub:0.1.0";

/// A self-hosted Socket.IO hub: a Deployment of `socketio-hub` pods that form one cluster,
/// exposed by a Service, configured from this spec.
// kube's derive takes one `printcolumn(...)` per column, which clippy mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "socketio.dev",
    version = "v1alpha1",
    kind = "SocketIOHub",
    plural = "socketiohubs",
    singular = "socketiohub",
    shortname = "sioh",
    namespaced,
    status = "SocketIOHubStatus",
    derive = "PartialEq",
    doc = "A self-hosted, clustered Socket.IO hub managed by socketio-hub-operator.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "string",
        description = "ready/desired pods",
        json_path = ".status.replicasSummary"
    ),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpoint"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.readyReplicas",
        label_selector_path = ".status.selector"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SocketIOHubSpec {
    /// Number of hub pods. Default 2.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// Container image of the hub. Default: the operator's default image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Image pull policy. Default: Kubernetes' own default for the image tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Names of Secrets for pulling the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// CPU and memory requests and limits of the hub container.
    /// Default: requests 100m CPU and 128Mi memory, limit 512Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// How clients and servers reach the hub.
    #[serde(default)]
    pub service: ServiceExposure,
    /// URL printed in the connection string and used as the hub's public endpoint.
    /// Default: `http://<name>.<namespace>.svc:<service.port>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/.*)?$"))]
    pub public_endpoint: Option<String>,
    /// HTTP path of the Socket.IO endpoint. Default `/socket.io/`.
    #[serde(default = "default_path")]
    #[schemars(regex(pattern = r"^/([^\s]*/)?$"), length(max = 256))]
    pub path: String,
    /// Allowed transports. Default both.
    #[serde(default = "default_transports")]
    #[schemars(length(min = 1, max = 2))]
    #[x_kube(validation = Rule::new("self.all(t, self.exists_one(u, u == t))").message("transports must not repeat"))]
    pub transports: Vec<Transport>,
    /// Server ping period in milliseconds. Default 25000.
    #[serde(default = "default_ping_interval")]
    #[schemars(range(min = 100, max = 3_600_000))]
    pub ping_interval_ms: i64,
    /// How long a pong may take, in milliseconds. Default 20000.
    #[serde(default = "default_ping_timeout")]
    #[schemars(range(min = 100, max = 3_600_000))]
    pub ping_timeout_ms: i64,
    /// Largest message or polling body a client may send, in bytes. Default 1000000.
    #[serde(default = "default_max_payload")]
    #[schemars(range(min = 1024, max = 268_435_456))]
    pub max_payload_bytes: i64,
    /// Browser cross-origin settings.
    #[serde(default)]
    pub cors: Cors,
    /// Connection state recovery (Socket.IO 4.6+).
    #[serde(default)]
    pub connection_state_recovery: Recovery,
    /// How the application's logic is reached.
    #[serde(default)]
    pub upstream: Upstream,
    /// Whether clients must present a token minted with an access key. Default `Disabled`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// The Secret holding the access keys.
    #[serde(default)]
    pub access_keys: AccessKeys,
    /// The Socket.IO Admin UI, served by the hub itself (see docs/admin-ui.md). Default off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_ui: Option<AdminUi>,
    /// Namespaces clients may join: exact (`/chat`), prefix (`/org-*`) or `*`. Default `["*"]`.
    #[serde(default = "default_namespaces")]
    #[schemars(length(min = 1))]
    #[x_kube(validation = Rule::new("self.all(n, n == '*' || n.startsWith('/'))").message("each namespace must be \"*\" or start with \"/\""))]
    pub namespaces: Vec<String>,
    /// Serve the demo chat page at `/`. Default false.
    #[serde(default)]
    pub demo_page: bool,
    /// How long a draining pod waits for clients to leave, in seconds. Default 10.
    #[serde(default = "default_shutdown_grace")]
    #[schemars(range(min = 0, max = 3600))]
    pub shutdown_grace_seconds: i64,
    /// Log settings of the hub pods.
    #[serde(default)]
    pub log: Log,
    /// The PodDisruptionBudget of the hub pods.
    #[serde(default)]
    pub pod_disruption_budget: Pdb,
    /// Horizontal autoscaling on client connections per pod (needs a custom-metrics adapter;
    /// see docs/autoscaling.md). When enabled, the HorizontalPodAutoscaler owns `replicas`:
    /// leave `replicas` out of the manifests you apply.
    #[serde(default)]
    pub autoscaling: Autoscaling,
    /// Node selector of the hub pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the hub pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the hub pods. Default: prefer spreading pods over nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Priority class of the hub pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub priority_class_name: Option<String>,
    /// Extra annotations on the hub pods (for example for a service mesh).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
}

/// When the kubelet pulls the image.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node lacks the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

/// A Socket.IO transport.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    Websocket,
}

/// Kind of the client Service.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// A cloud load balancer.
    LoadBalancer,
}

/// The client Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExposure {
    /// Service type. Default `ClusterIP`.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Service port for clients, the REST API and server links. Default 80.
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Fixed node port (NodePort and LoadBalancer only). Default: allocated by Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub node_port: Option<i32>,
    /// Annotations on the client Service (load-balancer settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ServiceExposure {
    fn default() -> Self {
        ServiceExposure {
            type_: ServiceType::ClusterIP,
            port: default_service_port(),
            node_port: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// Cross-origin settings for browsers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.credentials && self.allowedOrigins.exists(o, o == '*'))").message("browsers refuse credentials with origin \"*\": list the origins"))]
pub struct Cors {
    /// Allowed origins (`https://app.example.com`) or `*`. Default: every origin is echoed back.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self.all(o, o == '*' || o.startsWith('http://') || o.startsWith('https://'))").message("each origin must be \"*\" or start with http:// or https://"))]
    pub allowed_origins: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true`. Default false.
    #[serde(default)]
    pub credentials: bool,
}

/// Connection state recovery.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// Default false.
    #[serde(default)]
    pub enabled: bool,
    /// How long a disconnected socket's rooms and missed packets are kept, in ms. Default 120000.
    #[serde(default = "default_max_disconnection")]
    #[schemars(range(min = 1000, max = 86_400_000))]
    pub max_disconnection_ms: i64,
    /// Most packets kept per namespace for replay. Default 10000.
    #[serde(default = "default_max_buffered")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub max_buffered_packets: i64,
    /// How many other pods hold a copy of each connected socket's recovery state, so a socket
    /// is recovered when its pod dies. Default 1.
    #[serde(default = "default_recovery_replicas")]
    #[schemars(range(min = 0, max = 16))]
    pub replicas: i64,
    /// Most recovery sessions (disconnected sockets and replicas) a pod holds per namespace.
    /// Default 100000.
    #[serde(default = "default_recovery_sessions")]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub max_sessions: i64,
}

fn default_recovery_replicas() -> i64 {
    1
}

fn default_recovery_sessions() -> i64 {
    100_000
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            enabled: false,
            max_disconnection_ms: default_max_disconnection(),
            max_buffered_packets: default_max_buffered(),
            replicas: default_recovery_replicas(),
            max_sessions: default_recovery_sessions(),
        }
    }
}

/// How the application's logic is reached.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UpstreamMode {
    /// Application servers dial in over a server link (the Node SDK). The default.
    #[default]
    Link,
    /// Serverless: webhooks to `webhookUrl` plus the REST API.
    Webhook,
    /// No application: clients only do what the hub allows by itself.
    None,
}

/// The upstream of the hub.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'Webhook' || has(self.webhookUrl)").message("upstream.webhookUrl is required when upstream.mode is Webhook"))]
pub struct Upstream {
    /// `Link` (default), `Webhook` or `None`.
    #[serde(default)]
    pub mode: UpstreamMode,
    /// Webhook URL (required for `Webhook`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub webhook_url: Option<String>,
    /// How long a webhook may take, in ms. Default 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600_000))]
    pub webhook_timeout_ms: Option<i64>,
}

/// Client token requirement.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Tokens are not required.
    #[default]
    Disabled,
    /// Every client must present a valid token.
    Required,
}

/// What the Admin UI is told.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AdminUiMode {
    /// Aggregates only (costs nothing per message). The default.
    #[default]
    Production,
    /// Also the socket list and per-socket events (a cluster broadcast each).
    Development,
}

/// A key of a Secret in the hub's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"), length(max = 253))]
    pub name: String,
    /// The key holding the value.
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(max = 253))]
    pub key: String,
}

/// The Socket.IO Admin UI (`[admin_ui]` of the hub configuration).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.enabled || (has(self.username) && has(self.passwordHashSecret))").message("adminUi needs username and passwordHashSecret when enabled"))]
pub struct AdminUi {
    /// Serve the admin namespace. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// The admin namespace. Default `/admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/[^\s,?#]+$"), length(max = 256))]
    pub namespace: Option<String>,
    /// The UI's username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub username: Option<String>,
    /// The Secret key holding the bcrypt hash of the password (mounted into the pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash_secret: Option<SecretKeyRef>,
    /// `Production` (default) or `Development`.
    #[serde(default)]
    pub mode: AdminUiMode,
    /// Refuse the UI's commands. Default false.
    #[serde(default)]
    pub readonly: bool,
    /// Serve the UI's static files (embedded in the image) at `/admin-ui/`. Default false.
    #[serde(default)]
    pub serve_ui: bool,
}

/// The access-key Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeys {
    /// Name of the Secret (keys `accessKeys`, `primaryKey`, `secondaryKey`, `connectionString`).
    /// Generated with random keys when absent; an existing Secret is never overwritten.
    /// Default `<hub name>-access-keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"), length(max = 253))]
    pub secret_name: Option<String>,
}

/// Log settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Log {
    /// A `tracing` filter. Default `info`.
    #[serde(default = "default_log_level")]
    #[schemars(length(min = 1))]
    pub level: String,
    /// `Json` (default) or `Text`.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Log { level: default_log_level(), format: LogFormat::Json }
    }
}

/// Log line format.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line (the default: log collectors parse it).
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// The PodDisruptionBudget.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.minAvailable) && has(self.maxUnavailable))").message("set at most one of minAvailable and maxUnavailable"))]
pub struct Pdb {
    /// Create a PodDisruptionBudget. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Pods that must stay available during voluntary disruptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// Pods that may be down during voluntary disruptions. Default 1 when neither is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

impl Default for Pdb {
    fn default() -> Self {
        Pdb { enabled: true, min_available: None, max_unavailable: None }
    }
}

/// Horizontal autoscaling: a HorizontalPodAutoscaler on this hub (its scale subresource) that
/// keeps the average open connections per pod near a target, and a pod-deletion cost on every
/// pod that follows its connection count.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed autoscaling.maxReplicas"))]
pub struct Autoscaling {
    /// Create the HorizontalPodAutoscaler and keep the pods' deletion cost. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// Fewest pods. Default 2.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most pods. Default 10.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Open connections per pod the autoscaler aims at (metric `socketio_hub_connections`,
    /// averaged over the pods). Default 10000.
    #[serde(default = "default_target_connections")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub target_connections_per_pod: i64,
    /// How long the connection count must stay low before pods are removed, in seconds.
    /// Default 300.
    #[serde(default = "default_scale_down_stabilization")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
    /// Most pods removed per minute; each drains its clients paced before it stops. Default 1.
    #[serde(default = "default_scale_down_pods_per_minute")]
    #[schemars(range(min = 1, max = 100))]
    pub scale_down_pods_per_minute: i32,
}

impl Default for Autoscaling {
    fn default() -> Self {
        Autoscaling {
            enabled: false,
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_connections_per_pod: default_target_connections(),
            scale_down_stabilization_seconds: default_scale_down_stabilization(),
            scale_down_pods_per_minute: default_scale_down_pods_per_minute(),
        }
    }
}

/// What the operator observed and decided.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SocketIOHubStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Desired pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods that are ready and run the current configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// `ready/desired`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_summary: Option<String>,
    /// URL clients connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Name of the Secret holding the access keys and the connection string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret: Option<String>,
    /// Hash of the rendered hub configuration the pods should run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// Label selector of the hub's pods (the scale subresource's, for the autoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

fn default_replicas() -> i32 {
    2
}
fn default_path() -> String {
    "/socket.io/".into()
}
fn default_transports() -> Vec<Transport> {
    vec![Transport::Polling, Transport::Websocket]
}
fn default_ping_interval() -> i64 {
    25_000
}
fn default_ping_timeout() -> i64 {
    20_000
}
fn default_max_payload() -> i64 {
    1_000_000
}
fn default_namespaces() -> Vec<String> {
    vec!["*".into()]
}
fn default_shutdown_grace() -> i64 {
    10
}
fn default_service_port() -> i32 {
    80
}
fn default_max_disconnection() -> i64 {
    120_000
}
fn default_max_buffered() -> i64 {
    10_000
}
fn default_log_level() -> String {
    "info".into()
}
fn default_true() -> bool {
    true
}
fn default_min_replicas() -> i32 {
    2
}
fn default_max_replicas() -> i32 {
    10
}
fn default_target_connections() -> i64 {
    10_000
}
fn default_scale_down_stabilization() -> i32 {
    300
}
fn default_scale_down_pods_per_minute() -> i32 {
    1
}

impl SocketIOHubSpec {
    /// The spec of `spec: {}` after defaulting (what the API server stores for an empty spec).
    pub fn defaulted() -> Self {
        serde_json::from_value(serde_json::json!({}))
            .expect("every SocketIOHubSpec field has a default (crate invariant)")
    }
}
