//! An order-statistics tree: a B+tree whose inner nodes count the items below each child, so
//! that the position of an item and the item at a position are found in O(log n), and
//! iterating `k` items from a position costs O(log n + k). Wide nodes keep a lookup among a
//! million items to a handful of cache misses per level, three or four levels deep.
//!
//! Nodes live in one vector and point at each other by index (no unsafe code); freed slots are
//! reused. All leaves are at the same depth. A node that becomes empty is removed, and a small
//! node is merged with a sibling when both fit in half a node, so the tree stays compact after
//! deletions.

use std::cmp::Ordering;

/// Items a leaf holds before it splits in two.
const LEAF_MAX: usize = 64;
/// Children an inner node holds before it splits in two.
const INNER_MAX: usize = 64;

enum Node<T> {
    /// Items in order.
    Leaf(Vec<T>),
    Inner(Inner<T>),
}

struct Inner<T> {
    children: Vec<u32>,
    /// Items below each child.
    counts: Vec<usize>,
    /// `seps[i]` separates child `i` and child `i + 1`: every item of child `i` is less, every
    /// item of child `i + 1` is at least as large. (Removing items keeps these bounds true, so
    /// they are never updated on removal.)
    seps: Vec<T>,
}

impl<T: Ord> Inner<T> {
    /// The child whose range holds `item`.
    fn child_for(&self, item: &T) -> usize {
        self.seps.partition_point(|s| s <= item)
    }

    /// Items below the children before child `i`.
    fn before(&self, i: usize) -> usize {
        self.counts[..i].iter().sum()
    }
}

/// What inserting into a subtree did.
enum Inserted<T> {
    /// An equal item is there already.
    Present,
    /// Inserted at this position within the subtree.
    At(usize),
    /// Inserted at this position; the subtree's root split, and this separator and new node
    /// go to the right of it.
    Split(usize, T, u32),
}

/// A sorted collection of distinct `T` with positions (0-based here; the index service adds
/// 1 to make ranks).
pub struct OrderTree<T> {
    nodes: Vec<Node<T>>,
    free: Vec<u32>,
    root: u32,
    len: usize,
}

impl<T: Ord + Clone> Default for OrderTree<T> {
    fn default() -> Self {
        OrderTree {
            nodes: vec![Node::Leaf(Vec::new())],
            free: Vec::new(),
            root: 0,
            len: 0,
        }
    }
}

impl<T: Ord + Clone> OrderTree<T> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `item`; returns its position, or `None` (and drops `item`) when an equal item is
    /// already there.
    pub fn insert(&mut self, item: T) -> Option<usize> {
        let at = match self.insert_at(self.root, item) {
            Inserted::Present => return None,
            Inserted::At(at) => at,
            Inserted::Split(at, sep, right) => {
                let left = self.root;
                let counts = vec![self.size(left), self.size(right)];
                self.root = self.alloc(Node::Inner(Inner {
                    children: vec![left, right],
                    counts,
                    seps: vec![sep],
                }));
                at
            }
        };
        self.len += 1;
        Some(at)
    }

    /// Removes the item equal to `item`; returns whether there was one.
    pub fn remove(&mut self, item: &T) -> bool {
        if !self.remove_at(self.root, item) {
            return false;
        }
        self.len -= 1;
        // A root left with one child gives way to it; one left with none becomes a leaf.
        while let Node::Inner(inner) = &self.nodes[self.root as usize] {
            match inner.children[..] {
                [] => self.nodes[self.root as usize] = Node::Leaf(Vec::new()),
                [only] => {
                    self.release(self.root);
                    self.root = only;
                }
                _ => break,
            }
        }
        true
    }

    /// Position of the item equal to `item`, if present.
    pub fn position(&self, item: &T) -> Option<usize> {
        let mut t = self.root;
        let mut before = 0;
        loop {
            match &self.nodes[t as usize] {
                Node::Leaf(items) => return items.binary_search(item).ok().map(|i| before + i),
                Node::Inner(inner) => {
                    let i = inner.child_for(item);
                    before += inner.before(i);
                    t = inner.children[i];
                }
            }
        }
    }

    /// Number of items that `probe` orders before its target: `probe(x)` tells how item `x`
    /// compares with the target (`Less` = `x` comes first). The items must be partitioned:
    /// every `Less` before every other. This is the position the target would take.
    pub fn count_below(&self, probe: impl Fn(&T) -> Ordering) -> usize {
        let below = |x: &T| probe(x) == Ordering::Less;
        let mut t = self.root;
        let mut before = 0;
        loop {
            match &self.nodes[t as usize] {
                Node::Leaf(items) => return before + items.partition_point(below),
                Node::Inner(inner) => {
                    // A separator before the target bounds every item left of it from above.
                    let i = inner.seps.partition_point(below);
                    before += inner.before(i);
                    t = inner.children[i];
                }
            }
        }
    }

    /// The item at `pos`, if there are that many.
    pub fn get(&self, pos: usize) -> Option<&T> {
        self.iter_from(pos).next()
    }

    /// The items from position `pos` on, in order.
    pub fn iter_from(&self, mut pos: usize) -> Iter<'_, T> {
        let mut stack = Vec::new();
        let mut t = self.root;
        while let Node::Inner(inner) = &self.nodes[t as usize] {
            let mut i = 0;
            while i + 1 < inner.children.len() && pos >= inner.counts[i] {
                pos -= inner.counts[i];
                i += 1;
            }
            stack.push((t, i));
            t = inner.children[i];
        }
        Iter {
            tree: self,
            stack,
            leaf: t,
            at: pos,
        }
    }

    fn size(&self, t: u32) -> usize {
        match &self.nodes[t as usize] {
            Node::Leaf(items) => items.len(),
            Node::Inner(inner) => inner.counts.iter().sum(),
        }
    }

    /// How full a node is: items of a leaf, children of an inner node, against its maximum.
    fn fill(&self, t: u32) -> (usize, usize) {
        match &self.nodes[t as usize] {
            Node::Leaf(items) => (items.len(), LEAF_MAX),
            Node::Inner(inner) => (inner.children.len(), INNER_MAX),
        }
    }

    fn alloc(&mut self, node: Node<T>) -> u32 {
        match self.free.pop() {
            Some(t) => {
                self.nodes[t as usize] = node;
                t
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, t: u32) {
        self.nodes[t as usize] = Node::Leaf(Vec::new());
        self.free.push(t);
    }

    fn inner_mut(&mut self, t: u32) -> &mut Inner<T> {
        match &mut self.nodes[t as usize] {
            Node::Inner(inner) => inner,
            Node::Leaf(_) => unreachable!("node {t} is an inner node"),
        }
    }

    fn insert_at(&mut self, t: u32, item: T) -> Inserted<T> {
        let (i, child) = match &mut self.nodes[t as usize] {
            Node::Leaf(items) => {
                let at = match items.binary_search(&item) {
                    Ok(_) => return Inserted::Present,
                    Err(at) => at,
                };
                items.insert(at, item);
                if items.len() <= LEAF_MAX {
                    return Inserted::At(at);
                }
                let right = items.split_off(items.len() / 2);
                let sep = right[0].clone();
                let r = self.alloc(Node::Leaf(right));
                return Inserted::Split(at, sep, r);
            }
            Node::Inner(inner) => {
                let i = inner.child_for(&item);
                (i, inner.children[i])
            }
        };
        let (at, split) = match self.insert_at(child, item) {
            Inserted::Present => return Inserted::Present,
            Inserted::At(at) => (at, None),
            Inserted::Split(at, sep, right) => (at, Some((sep, right, self.size(right)))),
        };
        let inner = self.inner_mut(t);
        let at = inner.before(i) + at;
        inner.counts[i] += 1;
        let Some((sep, right, right_size)) = split else {
            return Inserted::At(at);
        };
        inner.counts[i] -= right_size;
        inner.counts.insert(i + 1, right_size);
        inner.children.insert(i + 1, right);
        inner.seps.insert(i, sep);
        if inner.children.len() <= INNER_MAX {
            return Inserted::At(at);
        }
        let mid = inner.children.len() / 2;
        let children = inner.children.split_off(mid);
        let counts = inner.counts.split_off(mid);
        let seps = inner.seps.split_off(mid);
        let up = inner.seps.pop().expect("a full inner node has separators");
        let r = self.alloc(Node::Inner(Inner {
            children,
            counts,
            seps,
        }));
        Inserted::Split(at, up, r)
    }

    fn remove_at(&mut self, t: u32, item: &T) -> bool {
        let (i, child) = match &mut self.nodes[t as usize] {
            Node::Leaf(items) => {
                return match items.binary_search(item) {
                    Ok(at) => {
                        items.remove(at);
                        true
                    }
                    Err(_) => false,
                };
            }
            Node::Inner(inner) => {
                let i = inner.child_for(item);
                (i, inner.children[i])
            }
        };
        if !self.remove_at(child, item) {
            return false;
        }
        self.inner_mut(t).counts[i] -= 1;
        self.tidy(t, i);
        true
    }

    /// Child `i` of inner node `t` lost an item: drop it when empty, or merge it with a
    /// sibling when both fit in half a node.
    fn tidy(&mut self, t: u32, i: usize) {
        let inner = self.inner_mut(t);
        let child = inner.children[i];
        if inner.counts[i] == 0 {
            inner.children.remove(i);
            inner.counts.remove(i);
            if !inner.seps.is_empty() {
                inner.seps.remove(i.saturating_sub(1));
            }
            self.release(child);
            return;
        }
        let n = inner.children.len();
        let (fill, max) = self.fill(child);
        if fill > max / 4 || n < 2 {
            return;
        }
        let l = if i + 1 < n { i } else { i - 1 };
        let inner = self.inner_mut(t);
        let (left, right) = (inner.children[l], inner.children[l + 1]);
        if self.fill(left).0 + self.fill(right).0 > max / 2 {
            return;
        }
        let inner = self.inner_mut(t);
        let sep = inner.seps.remove(l);
        let moved = inner.counts.remove(l + 1);
        inner.counts[l] += moved;
        inner.children.remove(l + 1);
        let right_node = std::mem::replace(&mut self.nodes[right as usize], Node::Leaf(Vec::new()));
        self.free.push(right);
        match (&mut self.nodes[left as usize], right_node) {
            (Node::Leaf(a), Node::Leaf(b)) => a.extend(b),
            (Node::Inner(a), Node::Inner(b)) => {
                a.seps.push(sep);
                a.seps.extend(b.seps);
                a.children.extend(b.children);
                a.counts.extend(b.counts);
            }
            _ => unreachable!("siblings are at the same depth"),
        }
    }
}

/// In-order iteration from a position (see [`OrderTree::iter_from`]).
pub struct Iter<'a, T> {
    tree: &'a OrderTree<T>,
    /// The inner nodes above `leaf`, each with the child taken.
    stack: Vec<(u32, usize)>,
    leaf: u32,
    /// Next item of `leaf`.
    at: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        let nodes = &self.tree.nodes;
        loop {
            if let Node::Leaf(items) = &nodes[self.leaf as usize] {
                if let Some(x) = items.get(self.at) {
                    self.at += 1;
                    return Some(x);
                }
            }
            // Up to the nearest node with a child further right, then down its leftmost path.
            loop {
                let (t, i) = self.stack.pop()?;
                let Node::Inner(inner) = &nodes[t as usize] else {
                    continue;
                };
                if i + 1 < inner.children.len() {
                    self.stack.push((t, i + 1));
                    let mut c = inner.children[i + 1];
                    while let Node::Inner(inner) = &nodes[c as usize] {
                        self.stack.push((c, 0));
                        c = inner.children[0];
                    }
                    self.leaf = c;
                    self.at = 0;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for the tests.
    fn rng(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *seed >> 33
    }

    impl<T: Ord + Clone + std::fmt::Debug> OrderTree<T> {
        /// Checks the tree's invariants; returns the depth of its leaves.
        fn check(&self) -> usize {
            fn walk<T: Ord + Clone + std::fmt::Debug>(
                tree: &OrderTree<T>,
                t: u32,
                low: Option<&T>,
                high: Option<&T>,
            ) -> (usize, usize) {
                match &tree.nodes[t as usize] {
                    Node::Leaf(items) => {
                        assert!(items.len() <= LEAF_MAX);
                        assert!(items.windows(2).all(|w| w[0] < w[1]));
                        assert!(items.iter().all(|x| low.is_none_or(|l| l <= x)));
                        assert!(items.iter().all(|x| high.is_none_or(|h| x < h)));
                        (items.len(), 0)
                    }
                    Node::Inner(inner) => {
                        let n = inner.children.len();
                        assert!(n <= INNER_MAX && inner.counts.len() == n);
                        assert_eq!(inner.seps.len() + 1, n);
                        let mut depth = None;
                        let mut total = 0;
                        for (i, &c) in inner.children.iter().enumerate() {
                            let lo = if i == 0 {
                                low
                            } else {
                                Some(&inner.seps[i - 1])
                            };
                            let hi = inner.seps.get(i).or(high);
                            let (size, d) = walk(tree, c, lo, hi);
                            assert_eq!(size, inner.counts[i], "count of child {i}");
                            assert!(size > 0, "no empty child");
                            assert!(depth.is_none_or(|x| x == d), "leaves at one depth");
                            depth = Some(d);
                            total += size;
                        }
                        (total, depth.unwrap_or(0) + 1)
                    }
                }
            }
            let (size, depth) = walk(self, self.root, None, None);
            assert_eq!(size, self.len);
            depth
        }
    }

    fn check_against(tree: &OrderTree<u64>, model: &[u64]) {
        tree.check();
        assert_eq!(tree.len(), model.len());
        let all: Vec<u64> = tree.iter_from(0).copied().collect();
        assert_eq!(all, model);
    }

    #[test]
    fn random_inserts_and_removes_agree_with_a_sorted_vector() {
        let mut tree = OrderTree::default();
        let mut model: Vec<u64> = Vec::new();
        let mut seed = 7;
        for step in 0..60_000u32 {
            let x = rng(&mut seed) % 20_000;
            let found = model.binary_search(&x);
            // Phases that grow, then shrink, the tree: splits, then merges and root collapse.
            let growing = (step / 20_000) % 2 == 0;
            if rng(&mut seed).is_multiple_of(4) != growing {
                assert_eq!(tree.insert(x), found.err(), "insert {x}");
                if let Err(at) = found {
                    model.insert(at, x);
                }
            } else {
                assert_eq!(tree.remove(&x), found.is_ok(), "remove {x}");
                if let Ok(at) = found {
                    model.remove(at);
                }
            }
            let probe = rng(&mut seed) % 20_000;
            let below = model.partition_point(|v| *v < probe);
            assert_eq!(tree.count_below(|v| v.cmp(&probe)), below);
            assert_eq!(tree.position(&probe), model.binary_search(&probe).ok());
            if step.is_multiple_of(5_000) {
                check_against(&tree, &model);
            }
        }
        check_against(&tree, &model);
        for (i, x) in model.iter().enumerate().step_by(7) {
            assert_eq!(tree.get(i), Some(x));
            let from: Vec<u64> = tree.iter_from(i).take(70).copied().collect();
            assert_eq!(from, model[i..model.len().min(i + 70)]);
        }
        assert_eq!(tree.get(model.len()), None);
        assert_eq!(tree.iter_from(model.len() + 3).next(), None);
    }

    #[test]
    fn emptied_tree_shrinks_and_reuses_its_slots() {
        let mut tree = OrderTree::default();
        for x in 0..10_000u32 {
            tree.insert(x);
        }
        let used = tree.nodes.len();
        assert!(tree.check() >= 2);
        for x in (0..10_000u32).filter(|x| x % 3 != 0) {
            assert!(tree.remove(&x));
        }
        tree.check();
        for x in (0..10_000u32).filter(|x| x % 3 == 0) {
            assert!(tree.remove(&x));
        }
        assert!(tree.is_empty());
        assert_eq!(tree.check(), 0, "back to one leaf");
        assert!(!tree.remove(&5));
        for x in (0..10_000u32).rev() {
            assert_eq!(tree.insert(x), Some(0));
        }
        tree.check();
        assert!(tree.nodes.len() <= used * 2, "freed slots are reused");
        assert_eq!(tree.get(9_999), Some(&9_999));
    }

    #[test]
    fn a_million_items_stay_a_few_levels_deep() {
        let mut tree = OrderTree::default();
        let mut seed = 1;
        let mut model = Vec::new();
        for _ in 0..1_000_000 {
            let x = rng(&mut seed);
            if tree.insert(x).is_some() {
                model.push(x);
            }
        }
        model.sort();
        assert!(tree.check() <= 4, "depth {}", tree.check());
        for (i, x) in model.iter().enumerate().step_by(997) {
            assert_eq!(tree.position(x), Some(i));
            assert_eq!(tree.get(i), Some(x));
        }
    }
}
