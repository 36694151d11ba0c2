//! The consistent-hash ring of a class in `hash` mode.
//!
//! Each member gets [`POINTS`] points at hashes of its *instance* number and the point index — not of its full service id, whose class byte is numbered per router — so every router
//! with the same members sends a key to the same instance, and a member leaving moves only the
//! keys that landed on its points. Keys are hashed the same way before the lookup.

use stage_proto::ServiceId;

/// Points per member: enough that keys spread evenly over a few members, and a leaving
/// member's share is split among all the others.
pub const POINTS: u32 = 64;

/// Sorted `(point, member)` pairs.
#[derive(Debug, Default, Clone)]
pub struct Ring {
    points: Vec<(u64, ServiceId)>,
}

/// The SplitMix64 finaliser: every input bit flips about half the output bits, so points and
/// keys that differ in a few low bits still land all over the ring. Fixed forever: changing it
/// would move every key.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn point(instance: u32, n: u32) -> u64 {
    mix(((instance as u64) << 32) | n as u64)
}

impl Ring {
    pub fn add(&mut self, id: ServiceId) {
        for n in 0..POINTS {
            let p = (point(id.instance(), n), id);
            let i = self.points.partition_point(|x| *x < p);
            self.points.insert(i, p);
        }
    }

    pub fn remove(&mut self, id: ServiceId) {
        self.points.retain(|(_, m)| *m != id);
    }

    /// Members in ring order starting at the owner of `key`, each point once (a member may
    /// repeat). Walk it until a usable member turns up: no allocation.
    pub fn walk(&self, key: u64) -> impl Iterator<Item = ServiceId> + '_ {
        let h = mix(key ^ 0x9e37_79b9_7f4a_7c15);
        let start = self.points.partition_point(|(p, _)| *p < h);
        let (after, before) = self.points.split_at(start);
        before.iter().chain(after).map(|(_, id)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_depend_on_instances_not_classes() {
        let mut a = Ring::default();
        let mut b = Ring::default();
        for i in 1..=3 {
            a.add(ServiceId::new(5, i).unwrap());
            b.add(ServiceId::new(9, i).unwrap());
        }
        for key in 0..1000u64 {
            let x = a.walk(key).next().unwrap().instance();
            let y = b.walk(key).next().unwrap().instance();
            assert_eq!(x, y, "key {key}");
        }
    }

    #[test]
    fn keys_spread_and_a_removal_moves_only_its_keys() {
        let mut r = Ring::default();
        for i in 1..=3 {
            r.add(ServiceId::new(1, i).unwrap());
        }
        let owner = |r: &Ring, k: u64| r.walk(k).next().unwrap().instance();
        let before: Vec<u32> = (0..3000).map(|k| owner(&r, k)).collect();
        for i in 1..=3 {
            let share = before.iter().filter(|o| **o == i).count();
            assert!(
                (500..1500).contains(&share),
                "instance {i} owns {share} of 3000"
            );
        }
        r.remove(ServiceId::new(1, 2).unwrap());
        for (k, was) in before.iter().enumerate() {
            let now = owner(&r, k as u64);
            if *was == 2 {
                assert_ne!(now, 2);
            } else {
                assert_eq!(now, *was);
            }
        }
    }
}
