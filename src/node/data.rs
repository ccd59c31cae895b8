//! The data set behind the dependencies: what each service holds, and the store that
//! answers reads and applies writes on the dependency's side.
//!
//! Both drivers use the same store: the live node as its in-process backend, the
//! simulator inside each simulated dependency. Generated records have a name rendered on
//! demand ([`Name::Generated`]), so a read in the simulator's hot loop copies a few
//! words and touches no string.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::protocol::{Name, Record, Resource};

/// The records one service holds: `count` generated records with ids `1..=count`, named
/// `"<Noun> <id>"`, plus explicit records that add to or override them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Collection {
    /// Generated records, ids `1..=count`.
    pub count: u64,
    /// Explicit records, by id (these win over generated ones).
    pub records: BTreeMap<u64, Arc<str>>,
    /// Whether the node's cache is preloaded with every record at start.
    pub warm: bool,
}

/// The data set of both services, indexed like [`Resource::dependency`].
#[derive(Debug, Clone, PartialEq)]
pub struct DataSet {
    /// Users, then products.
    pub collections: [Collection; 2],
}

impl Default for DataSet {
    /// The live node's built-in data set (the seed task's): user 123 "John Doe" and
    /// product 123 "Product", both warm in the cache.
    fn default() -> Self {
        let one = |name: &str| Collection {
            count: 0,
            records: BTreeMap::from([(123, Arc::from(name))]),
            warm: true,
        };
        DataSet {
            collections: [one("John Doe"), one("Product")],
        }
    }
}

impl DataSet {
    /// The collection behind `resource`.
    pub fn collection(&self, resource: Resource) -> &Collection {
        &self.collections[resource.dependency()]
    }

    /// Every record the node's cache starts with, in id order per resource.
    pub fn warm_records(&self) -> impl Iterator<Item = (Resource, Record)> + '_ {
        Resource::ALL.into_iter().flat_map(move |resource| {
            let collection = self.collection(resource);
            let store = Store::new(resource, collection);
            let ids: Vec<u64> = if collection.warm {
                let mut ids: Vec<u64> = (1..=collection.count).collect();
                ids.extend(
                    collection
                        .records
                        .keys()
                        .filter(|&&id| id == 0 || id > collection.count),
                );
                ids.sort_unstable();
                ids
            } else {
                Vec::new()
            };
            ids.into_iter()
                .filter_map(move |id| store.read(id).map(|record| (resource, record)))
        })
    }
}

/// One service's records, as the service itself holds them.
///
/// Writes carry a version (the node numbers writes in the order clients sent them),
/// and the store keeps the highest version it has applied for each record: a write
/// that arrives after a newer one (a retry drained late, two calls overtaking each
/// other) is acknowledged but does not overwrite, so no update is lost to reordering.
/// This is the conditional-write discipline real services use (versions, ETags).
#[derive(Debug, Clone)]
pub struct Store {
    resource: Resource,
    /// Records `1..=count`, in place, with the version last applied; only meaningful
    /// where `renamed` is set (elsewhere the record has its generated name, version 0).
    /// A write replaces its slot, so the store's memory does not grow with writes.
    generated: Vec<(Name, u64)>,
    /// One bit per generated record: set once the data set or a write gave it a name.
    ///
    /// Why: a read that reaches a simulated service is usually a cache miss on a cold
    /// record, and looking its slot up was itself a memory cache miss (a quarter of the
    /// simulator's effect handling). The bitmap is a bit per record, small enough to
    /// stay in the CPU's cache, and a record never written needs nothing else.
    renamed: Vec<u64>,
    /// Explicit records and records created by writes outside `1..=count`.
    explicit: BTreeMap<u64, (Name, u64)>,
}

impl Store {
    /// The store of `resource`, filled from `collection`.
    pub fn new(resource: Resource, collection: &Collection) -> Self {
        let count = usize::try_from(collection.count).expect("the data set fits in memory");
        let mut store = Store {
            resource,
            generated: (1..=collection.count)
                .map(|id| (Name::Generated(resource, id), 0))
                .collect(),
            renamed: vec![0; count.div_ceil(64)],
            explicit: BTreeMap::new(),
        };
        for (&id, name) in &collection.records {
            store.set(id, Name::Given(name.clone()), 0);
        }
        store
    }

    fn index(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        (index < self.generated.len()).then_some(index)
    }

    fn is_renamed(&self, index: usize) -> bool {
        self.renamed[index / 64] & (1 << (index % 64)) != 0
    }

    /// The record with `id`, or `None` when the service has no such record.
    pub fn read(&self, id: u64) -> Option<Record> {
        let name = match self.index(id) {
            Some(index) if !self.is_renamed(index) => Name::Generated(self.resource, id),
            Some(index) => self.generated[index].0.clone(),
            None => self.explicit.get(&id)?.0.clone(),
        };
        Some(Record { id, name })
    }

    /// The version last applied to record `id` (0 for one never written).
    fn applied(&self, id: u64) -> u64 {
        match self.index(id) {
            Some(index) if self.is_renamed(index) => self.generated[index].1,
            Some(_) => 0,
            None => self.explicit.get(&id).map_or(0, |&(_, version)| version),
        }
    }

    fn set(&mut self, id: u64, name: Name, version: u64) {
        match self.index(id) {
            Some(index) => {
                self.generated[index] = (name, version);
                self.renamed[index / 64] |= 1 << (index % 64);
            }
            None => {
                self.explicit.insert(id, (name, version));
            }
        }
    }

    /// Sets the name of record `id` (creating it if needed) unless the record already
    /// holds a newer version; returns the record as it now stands.
    pub fn write(&mut self, id: u64, name: Name, version: u64) -> Record {
        if self.applied(id) > version {
            return self.read(id).expect("a record with a version exists");
        }
        self.set(id, name.clone(), version);
        Record { id, name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_data_set_is_the_seed_tasks() {
        let data = DataSet::default();
        let warm: Vec<_> = data.warm_records().collect();
        assert_eq!(
            warm,
            vec![
                (
                    Resource::Users,
                    Record {
                        id: 123,
                        name: "John Doe".into()
                    }
                ),
                (
                    Resource::Products,
                    Record {
                        id: 123,
                        name: "Product".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn generated_explicit_and_written_records() {
        let collection = Collection {
            count: 3,
            records: BTreeMap::from([(2, Arc::from("Two")), (9, Arc::from("Nine"))]),
            warm: true,
        };
        let mut store = Store::new(Resource::Users, &collection);
        assert_eq!(store.read(1).unwrap().name, "User 1");
        assert_eq!(store.read(2).unwrap().name, "Two");
        assert_eq!(store.read(9).unwrap().name, "Nine");
        assert_eq!(store.read(0), None);
        assert_eq!(store.read(4), None);
        store.write(4, "Four".into(), 1);
        assert_eq!(store.read(4).unwrap().name, "Four");
        // An older write arriving late is acknowledged with the newer record.
        store.write(4, "Newer".into(), 3);
        let answer = store.write(4, "Older".into(), 2);
        assert_eq!(answer.name, "Newer");
        assert_eq!(store.read(4).unwrap().name, "Newer");

        let data = DataSet {
            collections: [collection, Collection::default()],
        };
        let ids: Vec<u64> = data.warm_records().map(|(_, r)| r.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 9]);
    }
}
