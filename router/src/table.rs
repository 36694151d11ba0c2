//! The forwarding table: per class, its name, forwarding mode and members.
//!
//! Members are kept sorted by service id (as luna does, luna-spec §1.4), so "lowest id" is the
//! first live entry; the hash ring depends on instance numbers only, so every router holding the
//! same registrations sends a key to the same instance. The
//! table is changed only by the control script (`router.route/master/mode`), copy-on-write, and
//! read by the hot path without a lock ([`crate::snapshot`]); round-robin cursors are atomics
//! shared by every reader of a version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rand::Rng;
use stage_proto::{Mode, ServiceId};

use crate::link::Link;
use crate::ring::Ring;

/// One member of a class. `link` is `None` for a hole (`router.route(id, 0)`), which keeps the
/// slot (and its hash share) reserved while the member is down.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: ServiceId,
    pub link: Option<Arc<Link>>,
}

impl Member {
    /// The member's link if the modes may pick it.
    pub fn live(&self) -> Option<&Arc<Link>> {
        self.link.as_ref().filter(|l| l.is_serving())
    }
}

/// A class: every registered instance of one stage name.
#[derive(Debug, Clone)]
pub struct Class {
    pub name: String,
    pub mode: Mode,
    pub members: Vec<Member>,
    /// Token set by `router.master(class, token)`; 0 = the lowest live id.
    pub master: u32,
    ring: Ring,
    cursor: Cursor,
}

/// A round-robin position, shared by every reader of a table version; a new version starts it
/// where the old one was.
#[derive(Debug, Default)]
struct Cursor(AtomicUsize);

impl Clone for Cursor {
    fn clone(&self) -> Self {
        Cursor(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

impl Class {
    /// The member master mode sends to: the one `router.master` chose while it is live, else
    /// the first live member.
    pub fn master_link(&self) -> Option<&Arc<Link>> {
        let mut live = self.members.iter().filter_map(Member::live);
        (self.master != 0)
            .then(|| live.clone().find(|l| l.token == self.master))
            .flatten()
            .or_else(|| live.next())
    }

    fn new(name: String) -> Class {
        Class {
            name,
            mode: Mode::RoundRobin,
            members: Vec::new(),
            master: 0,
            ring: Ring::default(),
            cursor: Cursor::default(),
        }
    }

    fn member(&self, id: ServiceId) -> Option<&Member> {
        self.members
            .binary_search_by_key(&id, |m| m.id)
            .ok()
            .map(|i| &self.members[i])
    }
}

/// Where a frame should go.
pub enum Pick<'a> {
    One(&'a Arc<Link>),
    /// Every live member (broadcast): the caller walks them, so nothing is allocated.
    All(&'a [Member]),
    None,
}

/// What the selection needs to know about the frame and its sender.
pub struct Request<'a> {
    pub target: ServiceId,
    pub mode: Mode,
    pub key: Option<u64>,
    pub source: ServiceId,
    pub from: &'a Link,
}

/// The whole table: 256 class slots and the name index. Cloned on every change (see
/// [`crate::snapshot`]): classes are shared between versions until one is changed.
#[derive(Debug, Clone)]
pub struct Table {
    classes: Vec<Option<Arc<Class>>>,
    names: HashMap<String, u8>,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            classes: (0..256).map(|_| None).collect(),
            names: HashMap::new(),
        }
    }
}

impl Table {
    /// The class number of `name`, if it has one.
    pub fn class_of(&self, name: &str) -> Option<u8> {
        self.names.get(name).copied()
    }

    pub fn class(&self, class: u8) -> Option<&Class> {
        self.classes[class as usize].as_deref()
    }

    /// The class number of `name`, creating the class if needed. `Ok((class, created))`.
    pub fn ensure_class(&mut self, name: &str) -> Result<(u8, bool), String> {
        if let Some(c) = self.class_of(name) {
            return Ok((c, false));
        }
        let free = (1..=255u8)
            .find(|c| self.classes[*c as usize].is_none())
            .ok_or_else(|| format!("cannot add stage '{name}': all 255 classes are in use"))?;
        self.classes[free as usize] = Some(Arc::new(Class::new(name.to_owned())));
        self.names.insert(name.to_owned(), free);
        Ok((free, true))
    }

    /// Every class with its number, in number order.
    pub fn classes(&self) -> impl Iterator<Item = (u8, &Class)> {
        self.classes
            .iter()
            .enumerate()
            .filter_map(|(n, c)| Some((n as u8, c.as_deref()?)))
    }

    /// Every `(name, class)` pair.
    pub fn class_list(&self) -> Vec<(String, u32)> {
        let mut v: Vec<_> = self
            .names
            .iter()
            .map(|(n, c)| (n.clone(), *c as u32))
            .collect();
        v.sort_by_key(|p| p.1);
        v
    }

    fn class_mut(&mut self, class: u8) -> Result<&mut Class, String> {
        self.classes[class as usize]
            .as_mut()
            .map(Arc::make_mut)
            .ok_or_else(|| format!("class {class} does not exist (use router.class(name))"))
    }

    /// `router.route`: insert or update `id` (link `None` = hole), or erase it (`erase`).
    pub fn route(
        &mut self,
        id: ServiceId,
        link: Option<Arc<Link>>,
        erase: bool,
    ) -> Result<(), String> {
        let class = self.class_mut(id.class())?;
        let pos = class.members.binary_search_by_key(&id, |m| m.id);
        match (pos, erase) {
            (Ok(i), true) => {
                class.members.remove(i);
                class.ring.remove(id);
            }
            (Err(_), true) => {}
            (Ok(i), false) => class.members[i].link = link,
            (Err(i), false) => {
                class.members.insert(i, Member { id, link });
                class.ring.add(id);
            }
        }
        Ok(())
    }

    pub fn set_mode(&mut self, class: u8, mode: Mode) -> Result<(), String> {
        self.class_mut(class)?.mode = mode;
        Ok(())
    }

    pub fn set_master(&mut self, class: u8, token: u32) -> Result<(), String> {
        self.class_mut(class)?.master = token;
        Ok(())
    }

    /// Chooses the member(s) for a frame. Never blocks and never allocates except for
    /// broadcast's list.
    pub fn pick<'a>(&'a self, req: &Request<'_>) -> Pick<'a> {
        let Some(class) = self.class(req.target.class()) else {
            return Pick::None;
        };
        let live = || class.members.iter().filter_map(Member::live);
        // Round-robin and random pass over members that reported themselves overloaded
        // (stage-spec §1.8), unless every member is.
        let number = req.target.class();
        let idle = || live().filter(move |l| !l.is_busy(number));
        let all_busy = || idle().next().is_none();
        if !req.target.is_class() {
            return class
                .member(req.target)
                .and_then(Member::live)
                .map_or(Pick::None, Pick::One);
        }
        let mode = match req.mode {
            Mode::Default => class.mode,
            m => m,
        };
        match mode {
            // A class in direct mode answers only frames naming an exact instance.
            Mode::Direct | Mode::Default => Pick::None,
            Mode::RoundRobin => {
                // One pass counts both: this is the default mode, on the hot path.
                let (live_n, idle_n) = live().fold((0, 0), |(l, i), link| {
                    (l + 1, i + usize::from(!link.is_busy(number)))
                });
                if idle_n == 0 {
                    turn(class, live(), live_n)
                } else {
                    turn(class, idle(), idle_n)
                }
            }
            Mode::SameHost | Mode::OtherHost => {
                let host = req.from.peer.ip();
                let same = mode == Mode::SameHost;
                let here = move |l: &&Arc<Link>| (l.peer.ip() == host) == same;
                // The busy fallback is decided among the members of the right hosts.
                if !idle().any(|l| here(&l)) {
                    round_robin(class, live().filter(here))
                } else {
                    round_robin(class, idle().filter(here))
                }
            }
            Mode::Master => class.master_link().map_or(Pick::None, Pick::One),
            Mode::Hash => {
                // Without a key, the sender's id: one sender then sticks to one member. When the
                // owner is a hole or its link died, its keys go to the next live member on the
                // ring while every other key keeps its owner (fixed hashing, luna-spec §3).
                let key = req.key.unwrap_or(req.source.0 as u64);
                class
                    .ring
                    .walk(key)
                    .find_map(|id| class.member(id).and_then(Member::live))
                    .map_or(Pick::None, Pick::One)
            }
            Mode::Random if all_busy() => random(live()),
            Mode::Random => random(idle()),
            Mode::Broadcast if live().next().is_none() => Pick::None,
            Mode::Broadcast => Pick::All(&class.members),
        }
    }
}

fn random<'a>(candidates: impl Iterator<Item = &'a Arc<Link>> + Clone) -> Pick<'a> {
    let n = candidates.clone().count();
    if n == 0 {
        return Pick::None;
    }
    let k = rand::thread_rng().gen_range(0..n);
    candidates.clone().nth(k).map_or(Pick::None, Pick::One)
}

fn round_robin<'a>(
    class: &Class,
    candidates: impl Iterator<Item = &'a Arc<Link>> + Clone,
) -> Pick<'a> {
    let n = candidates.clone().count();
    turn(class, candidates, n)
}

/// The next of `n` candidates in turn.
fn turn<'a>(
    class: &Class,
    mut candidates: impl Iterator<Item = &'a Arc<Link>>,
    n: usize,
) -> Pick<'a> {
    if n <= 1 {
        // A lone member needs no turn (and no write to the shared cursor).
        return candidates.next().map_or(Pick::None, Pick::One);
    }
    let k = class.cursor.0.fetch_add(1, Ordering::Relaxed) % n;
    candidates.nth(k).map_or(Pick::None, Pick::One)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(token: u32) -> Arc<Link> {
        let (tx, rx) = stage_proto::writer::queue(1 << 20);
        std::mem::forget(rx); // keep the queue open for the test's lifetime
        Arc::new(Link::new(
            token,
            format!("n{token}"),
            "127.0.0.1:1".parse().unwrap(),
            tx,
        ))
    }

    fn pick_token(
        t: &Table,
        target: ServiceId,
        mode: Mode,
        key: Option<u64>,
        from: &Link,
    ) -> Option<u32> {
        let req = Request {
            target,
            mode,
            key,
            source: ServiceId(0),
            from,
        };
        match t.pick(&req) {
            Pick::One(l) => Some(l.token),
            _ => None,
        }
    }

    /// A table with class `svc` and members 1..=3 on links 1..=3.
    fn three() -> (Table, Vec<Arc<Link>>, u8) {
        let mut t = Table::default();
        let (class, _) = t.ensure_class("svc").unwrap();
        let links: Vec<_> = (1..=3).map(link).collect();
        for (i, l) in links.iter().enumerate() {
            t.route(
                ServiceId::new(class, i as u32 + 1).unwrap(),
                Some(l.clone()),
                false,
            )
            .unwrap();
        }
        (t, links, class)
    }

    #[test]
    fn master_is_the_lowest_live_id_unless_set() {
        let (mut t, links, class) = three();
        let svc = ServiceId::new(class, 0).unwrap();
        assert_eq!(pick_token(&t, svc, Mode::Master, None, &links[0]), Some(1));
        links[0].kill();
        assert_eq!(pick_token(&t, svc, Mode::Master, None, &links[1]), Some(2));
        t.set_master(class, 3).unwrap();
        assert_eq!(pick_token(&t, svc, Mode::Master, None, &links[1]), Some(3));
    }

    #[test]
    fn a_hole_hands_only_its_own_keys_to_the_next_member() {
        let (mut t, links, class) = three();
        let svc = ServiceId::new(class, 0).unwrap();
        let before: Vec<_> = (0..500u64)
            .map(|k| pick_token(&t, svc, Mode::Hash, Some(k), &links[0]).unwrap())
            .collect();
        // route(id, 0): member 2 stays on the ring as a hole.
        t.route(ServiceId::new(class, 2).unwrap(), None, false)
            .unwrap();
        for (k, owner) in before.iter().enumerate() {
            let now = pick_token(&t, svc, Mode::Hash, Some(k as u64), &links[0]).unwrap();
            if *owner == 2 {
                assert_ne!(now, 2);
            } else {
                assert_eq!(now, *owner, "key {k} moved although its owner is alive");
            }
        }
    }

    #[test]
    fn direct_reaches_only_the_named_instance() {
        let (t, links, class) = three();
        let two = ServiceId::new(class, 2).unwrap();
        assert_eq!(pick_token(&t, two, Mode::Default, None, &links[0]), Some(2));
        assert_eq!(
            pick_token(
                &t,
                ServiceId::new(class, 9).unwrap(),
                Mode::Default,
                None,
                &links[0]
            ),
            None
        );
        assert_eq!(
            pick_token(
                &t,
                ServiceId::new(7, 0).unwrap(),
                Mode::Default,
                None,
                &links[0]
            ),
            None
        );
    }
}
