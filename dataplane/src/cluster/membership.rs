//! Membership as a pure state machine: the live peers and what each one gossips (tag, mesh and
//! HTTP addresses, readiness, load, and the set of rooms with members there), and the routing
//! decisions made from them. No I/O: `gossip.rs` feeds it snapshots from chitchat, tests feed
//! it literals.
//!
//! Invariants: a peer is routable only while chitchat reports it live *and* it published a tag
//! and a mesh address; `apply` returns exactly the peers that appeared and disappeared since
//! the previous snapshot, so the mesh opens and closes one link per change; a room named like a
//! socket id is routed to the node whose tag the id carries, never by the gossiped room set
//! (socket id rooms are implicit and not gossiped).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::ids::{NodeTag, SocketId};

/// Key of the node's tag (its id prefix), as 6 hex digits.
pub const KEY_TAG: &str = "tag";
/// Key of the mesh address.
pub const KEY_MESH: &str = "mesh";
/// Key of the client HTTP address (where forwarded requests go).
pub const KEY_HTTP: &str = "http";
/// Key of readiness (`1` or `0`).
pub const KEY_READY: &str = "ready";
/// Key of the number of sessions held.
pub const KEY_LOAD: &str = "load";
/// Key of the application servers linked to the node (link mode): `instance:sessions,…`.
pub const KEY_APPS: &str = "apps";
/// Key of the namespaces the node has served (a JSON array of names, at most
/// `MAX_GOSSIPED_NAMESPACES`): what the Admin UI's socket list fetches from.
pub const KEY_NAMESPACES: &str = "ns";
/// Most namespace names a node gossips.
pub const MAX_GOSSIPED_NAMESPACES: usize = 256;
/// Prefix of room keys: `r:<len(ns)>:<ns><room>` (the length makes the split unambiguous for
/// any namespace and room text).
pub const ROOM_PREFIX: &str = "r:";

/// A node of the cluster: its name and generation (start time in ns), so a restarted node is a
/// new member and its previous life's state is never mistaken for its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Configured or host name.
    pub name: Arc<str>,
    /// Start time in nanoseconds since the epoch.
    pub generation: u64,
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.generation)
    }
}

/// The gossip key of a room.
pub fn room_key(ns: &str, room: &str) -> String {
    format!("{ROOM_PREFIX}{}:{ns}{room}", ns.len())
}

/// The namespace and room of a room key (without checking the prefix twice).
pub fn parse_room_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(ROOM_PREFIX)?;
    let (len, rest) = rest.split_once(':')?;
    let len: usize = len.parse().ok()?;
    if len > rest.len() || !rest.is_char_boundary(len) {
        return None;
    }
    Some(rest.split_at(len))
}

/// Format a tag for gossip.
pub fn tag_text(tag: NodeTag) -> String {
    format!("{:06x}", tag.0)
}

/// What one peer published, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its id.
    pub id: NodeId,
    /// The tag in the ids it mints.
    pub tag: NodeTag,
    /// Mesh address.
    pub mesh: SocketAddr,
    /// Client HTTP address.
    pub http: Option<SocketAddr>,
    /// Whether it accepts clients.
    pub ready: bool,
    /// Sessions held.
    pub load: u64,
    /// Rooms with members there, by namespace.
    pub rooms: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Application servers linked there: (instance, sessions bound to it).
    pub apps: Vec<(u64, u64)>,
    /// Namespaces it has served (`KEY_NAMESPACES`).
    pub namespaces: Vec<Arc<str>>,
}

/// Format application servers for gossip (`KEY_APPS`).
pub fn apps_text(apps: &[(u64, u64)]) -> String {
    let mut out = String::new();
    for (i, (instance, bound)) in apps.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{instance}:{bound}"));
    }
    out
}

/// Parse `apps_text`; malformed entries are skipped.
pub fn parse_apps(text: &str) -> Vec<(u64, u64)> {
    text.split(',')
        .filter_map(|e| {
            let (i, b) = e.split_once(':')?;
            Some((i.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

impl Peer {
    /// Parse a peer from its key-values; `None` while it has not published a tag and mesh
    /// address (it is starting).
    pub fn parse<'a>(id: NodeId, kv: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Peer> {
        let (mut tag, mut mesh, mut http, mut ready, mut load) = (None, None, None, false, 0);
        let mut apps = Vec::new();
        let mut namespaces = Vec::new();
        let mut rooms: HashMap<Arc<str>, HashSet<Arc<str>>> = HashMap::new();
        for (k, v) in kv {
            match k {
                KEY_TAG => tag = u32::from_str_radix(v, 16).ok().map(NodeTag),
                KEY_MESH => mesh = v.parse().ok(),
                KEY_HTTP => http = v.parse().ok(),
                KEY_READY => ready = v == "1",
                KEY_LOAD => load = v.parse().unwrap_or(0),
                KEY_APPS => apps = parse_apps(v),
                KEY_NAMESPACES => {
                    namespaces = serde_json::from_str::<Vec<String>>(v)
                        .map(|names| names.into_iter().take(MAX_GOSSIPED_NAMESPACES).map(Arc::from).collect())
                        .unwrap_or_default()
                }
                _ => {
                    if let Some((ns, room)) = parse_room_key(k) {
                        rooms.entry(Arc::from(ns)).or_default().insert(Arc::from(room));
                    }
                }
            }
        }
        Some(Peer { id, tag: tag?, mesh: mesh?, http, ready, load, rooms, apps, namespaces })
    }

    /// Whether any of `rooms` of namespace `ns` has members on this peer.
    pub fn has_any(&self, ns: &str, rooms: &[Arc<str>]) -> bool {
        let Some(set) = self.rooms.get(ns) else { return false };
        rooms.iter().any(|r| set.contains(r))
    }
}

/// A change of the peer set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A peer became live (open a link).
    Up(NodeId, SocketAddr),
    /// A peer is gone: dead, left, or replaced by a newer generation (close its link).
    Down(NodeId),
}

/// How long a mesh room hint stands without gossip confirming it (gossip is authoritative;
/// by then it has caught up, and an unconfirmed hint is a room that emptied again).
pub const HINT_TTL_MS: u64 = 5_000;

/// Rooms one peer announced over the mesh: (namespace, room) → when (ms).
type Hints = HashMap<(Arc<str>, Arc<str>), u64>;

/// The live peers (this node excluded).
#[derive(Debug, Default, Clone)]
pub struct Membership {
    peers: BTreeMap<NodeId, Peer>,
    /// Rooms peers announced over the mesh ahead of gossip: peer → (namespace, room) → when (ms).
    hints: HashMap<NodeId, Hints>,
}

impl Membership {
    /// Record rooms `peer` announced over the mesh at `now_ms` (routed to until gossip confirms
    /// or `HINT_TTL_MS` passes). Hints of unknown peers are kept: the mesh can outrun gossip.
    pub fn hint(&mut self, peer: &NodeId, ns: &str, rooms: &[String], now_ms: u64) {
        let hints = self.hints.entry(peer.clone()).or_default();
        for r in rooms {
            hints.insert((Arc::from(ns), Arc::from(r.as_str())), now_ms);
        }
    }

    /// Drop hints that gossip confirmed or that expired.
    pub fn expire_hints(&mut self, now_ms: u64) {
        let peers = &self.peers;
        self.hints.retain(|id, hints| {
            let peer = peers.get(id);
            hints.retain(|(ns, room), at| {
                let confirmed = peer.is_some_and(|p| p.rooms.get(ns).is_some_and(|s| s.contains(room)));
                !confirmed && now_ms.saturating_sub(*at) < HINT_TTL_MS
            });
            !hints.is_empty()
        });
    }

    fn hinted(&self, id: &NodeId, ns: &str, rooms: &[Arc<str>]) -> bool {
        self.hints.get(id).is_some_and(|h| rooms.iter().any(|r| h.contains_key(&(Arc::from(ns), r.clone()))))
    }

    /// Replace the view with a snapshot of live peers; returns the changes, `Down` first.
    pub fn apply(&mut self, live: Vec<Peer>) -> Vec<Change> {
        let next: BTreeMap<NodeId, Peer> = live.into_iter().map(|p| (p.id.clone(), p)).collect();
        let mut changes = Vec::new();
        for (id, old) in &self.peers {
            match next.get(id) {
                Some(p) if p.mesh == old.mesh => {}
                _ => changes.push(Change::Down(id.clone())),
            }
        }
        for (id, p) in &next {
            match self.peers.get(id) {
                Some(old) if old.mesh == p.mesh => {}
                _ => changes.push(Change::Up(id.clone(), p.mesh)),
            }
        }
        self.peers = next;
        for c in &changes {
            if let Change::Down(id) = c {
                self.hints.remove(id);
            }
        }
        changes
    }

    /// Live peers.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// Number of live peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether there are no live peers.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The live peer minting ids with `tag`.
    pub fn by_tag(&self, tag: NodeTag) -> Option<&Peer> {
        self.peers.values().find(|p| p.tag == tag)
    }

    /// The peers a broadcast (or bulk operation) on `ns` selecting `rooms` must reach: every
    /// peer when `rooms` is empty (the whole namespace); otherwise the owners of socket-id
    /// rooms and the peers whose gossiped room set intersects the other rooms.
    pub fn route(&self, ns: &str, rooms: &[Arc<str>]) -> Vec<NodeId> {
        if rooms.is_empty() {
            return self.peers.keys().cloned().collect();
        }
        let mut named: Vec<Arc<str>> = Vec::with_capacity(rooms.len());
        let mut owners: HashSet<NodeTag> = HashSet::new();
        for r in rooms {
            match SocketId::parse(r) {
                Some(id) => {
                    if let Some(p) = self.peers.values().find(|p| id.is_owned_by(p.tag)) {
                        owners.insert(p.tag);
                    }
                }
                None => named.push(r.clone()),
            }
        }
        self.peers
            .values()
            .filter(|p| {
                owners.contains(&p.tag)
                    || (!named.is_empty() && (p.has_any(ns, &named) || self.hinted(&p.id, ns, &named)))
            })
            .map(|p| p.id.clone())
            .collect()
    }
}

/// The key-value changes that take the published room set from `old` to `new`.
pub fn room_diff<'a>(
    ns: &str,
    old: &'a HashSet<Arc<str>>,
    new: &'a HashSet<Arc<str>>,
) -> (Vec<String>, Vec<String>) {
    let added = new.difference(old).map(|r| room_key(ns, r)).collect();
    let removed = old.difference(new).map(|r| room_key(ns, r)).collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(name: &str, generation: u64) -> NodeId {
        NodeId { name: Arc::from(name), generation }
    }

    fn peer(name: &str, generation: u64, port: u16, rooms: &[(&str, &str)]) -> Peer {
        let tag = NodeTag::derive(name, generation);
        let mut kv = vec![
            (KEY_TAG.to_string(), tag_text(tag)),
            (KEY_MESH.to_string(), format!("127.0.0.1:{port}")),
            (KEY_HTTP.to_string(), format!("127.0.0.1:{}", port + 1)),
            (KEY_READY.to_string(), "1".to_string()),
            (KEY_LOAD.to_string(), "3".to_string()),
        ];
        kv.extend(rooms.iter().map(|(ns, r)| (room_key(ns, r), String::new())));
        Peer::parse(id(name, generation), kv.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap()
    }

    #[test]
    fn parses_a_peer_and_waits_for_its_addresses() {
        let p = peer("n1", 7, 7000, &[("/", "a"), ("/chat", "b")]);
        assert_eq!(p.tag, NodeTag::derive("n1", 7));
        assert_eq!(p.http, Some("127.0.0.1:7001".parse().unwrap()));
        assert!(p.ready && p.load == 3);
        assert!(p.has_any("/", &[Arc::from("x"), Arc::from("a")]));
        assert!(!p.has_any("/", &[Arc::from("b")]));
        assert_eq!(Peer::parse(id("n2", 1), [(KEY_TAG, "00ff00")]), None);
    }

    #[test]
    fn reports_ups_and_downs_and_a_restart_as_both() {
        let mut m = Membership::default();
        let a = peer("a", 1, 7000, &[]);
        let b = peer("b", 1, 7100, &[]);
        assert_eq!(
            m.apply(vec![a.clone(), b.clone()]),
            vec![Change::Up(id("a", 1), a.mesh), Change::Up(id("b", 1), b.mesh)]
        );
        assert_eq!(m.apply(vec![a.clone(), b.clone()]), vec![]);
        let b2 = peer("b", 2, 7100, &[]);
        assert_eq!(
            m.apply(vec![a.clone(), b2.clone()]),
            vec![Change::Down(id("b", 1)), Change::Up(id("b", 2), b2.mesh)]
        );
        assert_eq!(m.apply(vec![b2]), vec![Change::Down(id("a", 1))]);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn routes_by_room_set_and_socket_id_owner() {
        let mut m = Membership::default();
        let a = peer("a", 1, 7000, &[("/", "red"), ("/chat", "blue")]);
        let b = peer("b", 1, 7100, &[("/", "blue")]);
        let c = peer("c", 1, 7200, &[]);
        m.apply(vec![a, b, c.clone()]);
        assert_eq!(m.route("/", &[]).len(), 3, "no rooms: the whole namespace, every peer");
        assert_eq!(m.route("/", &[Arc::from("red")]), vec![id("a", 1)]);
        assert_eq!(m.route("/", &[Arc::from("blue")]), vec![id("b", 1)]);
        assert_eq!(m.route("/", &[Arc::from("red"), Arc::from("blue")]), vec![id("a", 1), id("b", 1)]);
        assert!(m.route("/", &[Arc::from("green")]).is_empty());
        let sock = SocketId::new(c.tag);
        assert_eq!(m.route("/", &[Arc::from(sock.as_str())]), vec![id("c", 1)]);
        let elsewhere = SocketId::new(NodeTag::derive("gone", 9));
        assert!(m.route("/", &[Arc::from(elsewhere.as_str())]).is_empty());
        assert_eq!(m.by_tag(c.tag).map(|p| p.id.clone()), Some(id("c", 1)));
    }

    #[test]
    fn mesh_hints_route_ahead_of_gossip_until_confirmed_or_expired() {
        let mut m = Membership::default();
        let a = peer("a", 1, 7000, &[]);
        m.apply(vec![a.clone()]);
        assert!(m.route("/", &[Arc::from("fresh")]).is_empty());
        m.hint(&a.id, "/", &["fresh".to_string()], 1_000);
        assert_eq!(m.route("/", &[Arc::from("fresh")]), vec![id("a", 1)], "routed on the hint alone");
        m.expire_hints(1_000 + HINT_TTL_MS - 1);
        assert_eq!(m.route("/", &[Arc::from("fresh")]).len(), 1, "not expired yet");
        m.expire_hints(1_000 + HINT_TTL_MS);
        assert!(m.route("/", &[Arc::from("fresh")]).is_empty(), "an unconfirmed hint expires");
        // Gossip confirming a room retires its hint; gossip is then the only source.
        m.hint(&a.id, "/", &["r".to_string()], 2_000);
        m.apply(vec![peer("a", 1, 7000, &[("/", "r")])]);
        m.expire_hints(2_001);
        assert!(m.hints.is_empty());
        // A peer going down takes its hints along.
        m.hint(&a.id, "/", &["x".to_string()], 3_000);
        m.apply(vec![]);
        assert!(m.hints.is_empty());
    }

    #[test]
    fn apps_round_trip_and_skip_garbage() {
        let apps = vec![(1, 0), (7, 1200)];
        assert_eq!(parse_apps(&apps_text(&apps)), apps);
        assert_eq!(apps_text(&[]), "");
        assert!(parse_apps("").is_empty());
        assert_eq!(parse_apps("x:1,2:3,4"), vec![(2, 3)]);
        let kv = [(KEY_TAG, "0000aa"), (KEY_MESH, "127.0.0.1:1"), (KEY_APPS, "3:9")];
        assert_eq!(Peer::parse(id("n", 1), kv).unwrap().apps, vec![(3, 9)]);
    }

    #[test]
    fn namespaces_parse_and_skip_garbage() {
        let base = [(KEY_TAG, "0000aa"), (KEY_MESH, "127.0.0.1:1")];
        let with =
            |v: &'static str| Peer::parse(id("n", 1), base.into_iter().chain([(KEY_NAMESPACES, v)])).unwrap();
        let names: Vec<String> = with(r#"["/","/chat"]"#).namespaces.iter().map(|n| n.to_string()).collect();
        assert_eq!(names, vec!["/", "/chat"]);
        assert!(with("not json").namespaces.is_empty());
        assert!(Peer::parse(id("n", 1), base).unwrap().namespaces.is_empty());
    }

    #[test]
    fn room_diff_adds_and_removes_keys() {
        let old: HashSet<Arc<str>> = [Arc::from("a"), Arc::from("b")].into();
        let new: HashSet<Arc<str>> = [Arc::from("b"), Arc::from("c")].into();
        let (added, removed) = room_diff("/x", &old, &new);
        assert_eq!(added, vec!["r:2:/xc".to_string()]);
        assert_eq!(removed, vec!["r:2:/xa".to_string()]);
    }

    proptest! {
        #[test]
        fn room_keys_round_trip(ns in "/[^\u{0}]{0,20}", room in ".{0,40}") {
            let key = room_key(&ns, &room);
            prop_assert_eq!(parse_room_key(&key), Some((ns.as_str(), room.as_str())));
        }

        #[test]
        fn room_key_parsing_never_panics(key in ".{0,40}") {
            let _ = parse_room_key(&key);
        }
    }
}
