//! The cache of effective permissions, keyed by what they are computed from (user, organization,
//! roles and sets given by the principal), and the cache's hit and miss counters.
//!
//! Two lookups per secured request land here, so a lookup allocates nothing: the key's parts are
//! hashed as borrowed, and an entry's owned key is compared with them only when the hash matches.
//! (It used to build a `format!` string per lookup: about a thousand instructions each.)

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use objectos_kernel::recorder::Kept;

use super::Effective;

/// The owned key of one entry.
#[derive(Debug)]
struct Key {
    id: Option<String>,
    tenant: Option<String>,
    roles: Vec<String>,
    sets: Vec<String>,
}

/// What a lookup asks for, borrowed from the principal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lookup<'a> {
    pub id: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub roles: &'a [String],
    pub sets: &'a [String],
}

impl Lookup<'_> {
    fn hash(&self) -> u64 {
        // `DefaultHasher::new()` uses fixed keys: the same parts hash alike on every call, and
        // the map is private to this process, so a client cannot aim collisions at it.
        let mut h = DefaultHasher::new();
        self.id.hash(&mut h);
        self.tenant.hash(&mut h);
        self.roles.hash(&mut h);
        self.sets.hash(&mut h);
        h.finish()
    }

    fn is(&self, key: &Key) -> bool {
        self.id == key.id.as_deref()
            && self.tenant == key.tenant.as_deref()
            && self.roles == key.roles.as_slice()
            && self.sets == key.sets.as_slice()
    }

    fn to_key(self) -> Key {
        Key {
            id: self.id.map(str::to_owned),
            tenant: self.tenant.map(str::to_owned),
            roles: self.roles.to_vec(),
            sets: self.sets.to_vec(),
        }
    }
}

/// Effective permissions by key; entries with equal hashes share a bucket.
#[derive(Debug, Default)]
pub(crate) struct Decisions {
    buckets: HashMap<u64, Vec<(Key, Arc<Effective>)>>,
}

static HITS: Kept<metrics::Counter> = Kept::new();
static MISSES: Kept<metrics::Counter> = Kept::new();

impl Decisions {
    /// The cached entry for `lookup`, counting a hit or a miss.
    pub(crate) fn get(&self, lookup: &Lookup<'_>) -> Option<Arc<Effective>> {
        let found = self
            .buckets
            .get(&lookup.hash())
            .and_then(|bucket| bucket.iter().find(|(key, _)| lookup.is(key)))
            .map(|(_, eff)| eff.clone());
        let (slot, name) = if found.is_some() {
            (&HITS, "objectos_permissions_cache_hits_total")
        } else {
            (&MISSES, "objectos_permissions_cache_misses_total")
        };
        slot.with(|| metrics::counter!(name), |c| c.increment(1));
        found
    }

    /// Keeps `eff` for `lookup` (replacing an entry with the same key).
    pub(crate) fn insert(&mut self, lookup: &Lookup<'_>, eff: Arc<Effective>) {
        let bucket = self.buckets.entry(lookup.hash()).or_default();
        match bucket.iter_mut().find(|(key, _)| lookup.is(key)) {
            Some(entry) => entry.1 = eff,
            None => bucket.push((lookup.to_key(), eff)),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.buckets.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.buckets.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn keys_differ_by_every_part() {
        let mut d = Decisions::default();
        let roles = strings(&["sales"]);
        let sets = strings(&["rep"]);
        let none: Vec<String> = Vec::new();
        let base = Lookup {
            id: Some("u1"),
            tenant: Some("o1"),
            roles: &roles,
            sets: &sets,
        };
        d.insert(&base, Arc::new(Effective::default()));
        assert!(d.get(&base).is_some());
        for other in [
            Lookup {
                id: Some("u2"),
                ..base
            },
            Lookup { id: None, ..base },
            Lookup {
                tenant: None,
                ..base
            },
            Lookup {
                tenant: Some("o2"),
                ..base
            },
            Lookup {
                roles: &none,
                ..base
            },
            Lookup {
                sets: &none,
                ..base
            },
            // Parts moved between fields must not collide into the same key.
            Lookup {
                roles: &sets,
                sets: &roles,
                ..base
            },
        ] {
            assert!(d.get(&other).is_none(), "{other:?} matched {base:?}");
        }
        d.insert(&base, Arc::new(Effective::default()));
        assert_eq!(d.len(), 1, "re-inserting a key replaces it");
        d.clear();
        assert_eq!(d.len(), 0);
    }
}
