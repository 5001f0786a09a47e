#![allow(clippy::field_reassign_with_default)] // tests tweak one field of the default at a time
use super::*;

#[test]
fn empty_file_is_the_default_hub() {
    let c = HubConfig::from_toml("").unwrap();
    assert_eq!(c, HubConfig::default());
    c.validate().unwrap();
    assert_eq!(c.endpoint(), "http://localhost:3000");
}

#[test]
fn toml_round_trips() {
    let mut c = HubConfig::default();
    c.upstream.mode = UpstreamMode::Webhook;
    c.upstream.webhook_url = Some("http://app:8080/hook".into());
    c.permissions.push(PermissionGrant {
        namespace: "/demo".into(),
        join: vec!["*".into()],
        emit: vec!["*".into()],
    });
    c.socketio.recovery.enabled = true;
    let text = c.to_toml();
    assert_eq!(HubConfig::from_toml(&text).unwrap(), c);
}

#[test]
fn unknown_keys_are_refused() {
    let err = HubConfig::from_toml("pth = \"/x/\"").unwrap_err();
    assert!(err.to_string().contains("pth"), "{err}");
}

#[test]
fn every_problem_is_reported_with_its_field() {
    let mut c = HubConfig::default();
    c.path = "socket.io".into();
    c.upstream.mode = UpstreamMode::Webhook;
    c.engine.ping_timeout_ms = 5;
    let ConfigError::Invalid(problems) = c.validate().unwrap_err() else { panic!("expected Invalid") };
    let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
    assert_eq!(fields, ["path", "engine.ping_timeout_ms", "upstream.webhook_url"]);
}

#[test]
fn patterns() {
    assert!(pattern_matches("*", "/anything"));
    assert!(pattern_matches("/org-*", "/org-1"));
    assert!(!pattern_matches("/org-*", "/orz"));
    assert!(pattern_matches("/chat", "/chat"));
    assert!(!pattern_matches("/chat", "/chat2"));
}

#[test]
fn the_cluster_secret_has_a_minimum_length_and_one_source() {
    let mut c = HubConfig::default();
    c.cluster.secret = Some("short".into());
    let ConfigError::Invalid(problems) = c.validate().unwrap_err() else { panic!("expected Invalid") };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "cluster.secret");
    assert!(problems[0].message.contains("32"), "{}", problems[0]);
    // Whitespace around the secret does not count towards its length.
    c.cluster.secret = Some(format!("  {}  ", "x".repeat(31)));
    assert!(c.validate().is_err());
    c.cluster.secret = Some("x".repeat(32));
    c.validate().unwrap();
    c.cluster.secret_file = Some("/run/secret".into());
    let ConfigError::Invalid(problems) = c.validate().unwrap_err() else { panic!("expected Invalid") };
    assert!(problems[0].message.contains("not both"), "{}", problems[0]);
    c.cluster.secret = None;
    c.validate().unwrap();
}

#[test]
fn limits_are_off_by_default_and_validated() {
    let c = HubConfig::from_toml(
        "[limits]\nconnections_per_ip = 20\ntrusted_proxy_header = \"x-forwarded-for\"\n",
    )
    .unwrap();
    assert_eq!((c.limits.connections_per_ip, c.limits.trusted_proxy_hops), (20, 1));
    c.validate().unwrap();
    let d = LimitsConfig::default();
    assert_eq!(
        (d.connections_per_ip, d.handshakes_per_second_per_ip, d.packets_per_second, d.bytes_per_second),
        (0, 0, 0, 0)
    );
    assert_eq!((d.rooms_per_socket, d.namespaces_per_connection, d.trusted_proxy_header), (0, 0, None));

    let mut bad = HubConfig::default();
    bad.limits.trusted_proxy_header = Some("X Forwarded".into());
    bad.limits.trusted_proxy_hops = 0;
    bad.limits.max_tracked_ips = 0;
    bad.engine.max_sessions = 10;
    bad.limits.connections_per_ip = 11;
    let ConfigError::Invalid(problems) = bad.validate().unwrap_err() else { panic!("expected Invalid") };
    let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
    assert_eq!(
        fields,
        [
            "limits.trusted_proxy_header",
            "limits.trusted_proxy_hops",
            "limits.max_tracked_ips",
            "limits.connections_per_ip"
        ]
    );
}

const HASH: &str = "$2b$10$Q8fG7qJYyH3Q0fXnqZ0qxeN1m7qv3oXJxg0o5yq7yQm0nqvY5k2cS";

#[test]
fn admin_ui_is_off_by_default_and_parses_from_toml() {
    assert!(!HubConfig::default().admin_ui.enabled);
    let text = format!(
        "[admin_ui]\nenabled = true\nusername = \"admin\"\npassword_hash = \"{HASH}\"\nmode = \"development\"\n"
    );
    let c = HubConfig::from_toml(&text).unwrap();
    c.validate().unwrap();
    assert_eq!(c.admin_ui.namespace, "/admin");
    assert_eq!(c.admin_ui.mode, AdminUiMode::Development);
    assert_eq!(HubConfig::from_toml(&c.to_toml()).unwrap(), c);
}

#[test]
fn admin_ui_problems_name_their_fields() {
    let mut c = HubConfig::default();
    c.admin_ui.enabled = true;
    c.admin_ui.namespace = "/".into();
    c.admin_ui.password_hash = Some("not-a-hash".into());
    c.admin_ui.stats_interval_ms = 10;
    c.admin_ui.allowed_origins = vec!["*".into()];
    c.admin_ui.serve_ui = true;
    c.admin_ui.ui_path = "/socket.io/ui/".into();
    let ConfigError::Invalid(problems) = c.validate().unwrap_err() else { panic!("expected Invalid") };
    let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
    for f in [
        "admin_ui.namespace",
        "admin_ui.username",
        "admin_ui.password_hash",
        "admin_ui.stats_interval_ms",
        "admin_ui.allowed_origins",
        "admin_ui.ui_path",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    // Both a hash and a file, or credentials with auth = none, are refused too.
    let mut c = HubConfig::default();
    c.admin_ui.enabled = true;
    c.admin_ui.username = Some("admin".into());
    c.admin_ui.password_hash = Some(HASH.into());
    c.admin_ui.password_hash_file = Some("/run/secrets/hash".into());
    assert!(c.validate().unwrap_err().to_string().contains("not both"));
    c.admin_ui.auth = AdminUiAuth::None;
    assert!(c.validate().unwrap_err().to_string().contains("admin_ui.auth"));
    c.admin_ui.username = None;
    c.admin_ui.password_hash = None;
    c.admin_ui.password_hash_file = None;
    c.validate().unwrap();
}

#[test]
fn bcrypt_hash_shape() {
    assert!(is_bcrypt_hash(HASH));
    assert!(is_bcrypt_hash(&HASH.replace("$2b$", "$2y$")));
    assert!(!is_bcrypt_hash(&HASH.replace("$10$", "$03$")));
    assert!(!is_bcrypt_hash(&HASH[..59]));
    assert!(!is_bcrypt_hash(&HASH.replace('Q', "!")));
    assert!(!is_bcrypt_hash("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA"));
}
