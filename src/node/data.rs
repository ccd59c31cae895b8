//! The data set behind the dependencies: what each service holds, and the store that
//! answers reads and applies writes on the dependency's side.
//!
//! Both drivers use the same store: the live node as its in-process backend, the
//! simulator inside each simulated dependency. Generated records have a name rendered on
//! demand ([`Name::Generated`]), so a read in the simulator's hot loop copies a few
//! words and touches no string.
//!
//! A store may be bounded ([`StoreLimits`]): the live node's is, because its clients
//! choose the ids and names it must keep, and a store that keeps every record ever
//! written grows with its input until the process runs out of memory. The simulator's
//! stores are unbounded: a scenario's workload draws from its data set, and what a
//! simulated service holds is part of the simulated world, not of the process's budget.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::protocol::{Name, Record, Resource};
use super::service::{CallResult, Op};

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

/// How much writes may add to a [`Store`] beyond its data set.
///
/// Records are never deleted, so without a bound a store grows with every new id and
/// every longer name it is sent. Both bounds count only what writes add: the data set,
/// however large (a scenario's, through `brownout node --config`), takes none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Records that writes may create: writes to ids the data set does not hold.
    pub max_new_records: u64,
    /// Bytes of names the store may hold beyond those of its data set. Only names given
    /// as text count; generated names (`"User 7"`) are rendered on demand and take none.
    pub max_name_bytes: u64,
}

impl StoreLimits {
    /// No bound: the simulator's stores.
    pub const UNLIMITED: StoreLimits = StoreLimits {
        max_new_records: u64::MAX,
        max_name_bytes: u64::MAX,
    };
}

/// Why a store refused a write: applying it would pass one of its [`StoreLimits`].
///
/// A refusal is a healthy, definite answer: nothing was written, and the same write
/// would be refused again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFull {
    /// The write would create a record, and writes have created `limit` already.
    NewRecords {
        /// [`StoreLimits::max_new_records`].
        limit: u64,
    },
    /// The write's name (`name_bytes` long) would take the names held beyond the data
    /// set's past `limit` bytes.
    NameBytes {
        /// [`StoreLimits::max_name_bytes`].
        limit: u64,
        /// The length of the write's name.
        name_bytes: u64,
    },
}

impl fmt::Display for StoreFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StoreFull::NewRecords { limit } => write!(
                f,
                "it holds the {limit} records that writes may create beyond its data set \
                 (writes to records it holds are still taken)"
            ),
            StoreFull::NameBytes { limit, name_bytes } => write!(
                f,
                "a name of {name_bytes} bytes would take the names it holds past the limit of \
                 {limit} bytes beyond its data set (writes that do not lengthen a name are \
                 still taken)"
            ),
        }
    }
}

/// The bytes a name takes in memory beyond the record itself: its text when given,
/// nothing when rendered on demand.
fn name_bytes(name: &Name) -> u64 {
    match name {
        Name::Given(text) => text.len() as u64,
        Name::Generated(..) | Name::Revised(..) | Name::Record(..) | Name::RecordRevised(..) => 0,
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
    /// Whose generated names its records have: a seed resource's (`"User 7"`), or a
    /// declared dependency's (`"Record 7"`) when `None`.
    resource: Option<Resource>,
    /// Records `1..=count`, in place, with the version last applied; only meaningful
    /// where `renamed` is set (elsewhere the record has its generated name, version 0).
    /// A write replaces its slot, so the store's memory is bounded by the data set's
    /// size, never by the number of writes.
    generated: Slots,
    /// One bit per generated record: set once the data set or a write gave it a name.
    ///
    /// Why: a read that reaches a simulated service is usually a cache miss on a cold
    /// record, and looking its slot up was itself a memory cache miss (a quarter of the
    /// simulator's effect handling). The bitmap is a bit per record, small enough to
    /// stay in the CPU's cache, and a record never written needs nothing else.
    renamed: Vec<u64>,
    /// Explicit records and records created by writes outside `1..=count`.
    explicit: BTreeMap<u64, (Name, u64)>,
    limits: StoreLimits,
    /// Records created by writes (ids the data set did not hold).
    created: u64,
    /// Bytes of given names held now, and as the data set left them: what
    /// [`StoreLimits::max_name_bytes`] bounds is the difference.
    name_bytes: u64,
    data_set_name_bytes: u64,
}

/// The slots of a store's generated records, in pages allocated on a page's first
/// write. A million-record key space used to be a million slots filled up front
/// (32 MB before the first request, most of a declared node's memory and a few
/// percent of a run that never wrote most of them); now a page is 32 KiB and exists
/// only once a record in it was renamed. The bound is unchanged (every page, at
/// worst), and the slot of a record is still found by arithmetic, not by hashing.
#[derive(Debug, Clone)]
struct Slots {
    /// Records `1..=len` have a slot (index `id - 1`).
    len: usize,
    pages: Vec<Option<Page>>,
}

/// [`Slots::PAGE`] slots: a record's name and the version last applied to it.
type Page = Box<[(Name, u64)]>;

impl Slots {
    /// Slots per page: 1024 of 32 bytes.
    const PAGE: usize = 1024;

    fn new(len: usize) -> Slots {
        Slots {
            len,
            pages: vec![None; len.div_ceil(Slots::PAGE)],
        }
    }

    /// The slot at `index`, which must have been set.
    #[inline]
    fn get(&self, index: usize) -> &(Name, u64) {
        let page = self.pages[index / Slots::PAGE]
            .as_ref()
            .expect("a renamed record's page exists");
        &page[index % Slots::PAGE]
    }

    fn set(&mut self, index: usize, slot: (Name, u64)) {
        let page = self.pages[index / Slots::PAGE]
            .get_or_insert_with(|| vec![(Name::Record(0), 0); Slots::PAGE].into_boxed_slice());
        page[index % Slots::PAGE] = slot;
    }
}

impl Store {
    /// The store of `resource`, filled from `collection`, with no bound on writes.
    pub fn new(resource: Resource, collection: &Collection) -> Self {
        Store::with_limits(resource, collection, StoreLimits::UNLIMITED)
    }

    /// The store of `resource`, filled from `collection`; writes may add to it up to
    /// `limits`.
    pub fn with_limits(resource: Resource, collection: &Collection, limits: StoreLimits) -> Self {
        Store::build(Some(resource), collection, limits)
    }

    /// The store of a declared service's dependency, filled from `collection` (records
    /// `1..=count` named `"Record K"`, and the explicit ones), with no bound on writes.
    pub fn declared(collection: &Collection) -> Self {
        Store::declared_with_limits(collection, StoreLimits::UNLIMITED)
    }

    /// [`Store::declared`] with writes bounded by `limits` (the live node's).
    pub fn declared_with_limits(collection: &Collection, limits: StoreLimits) -> Self {
        Store::build(None, collection, limits)
    }

    /// The generated name of record `id`.
    #[inline]
    fn generated_name(resource: Option<Resource>, id: u64) -> Name {
        match resource {
            Some(resource) => Name::Generated(resource, id),
            None => Name::Record(id),
        }
    }

    fn build(resource: Option<Resource>, collection: &Collection, limits: StoreLimits) -> Self {
        let count = usize::try_from(collection.count).expect("the data set fits in memory");
        let mut store = Store {
            resource,
            generated: Slots::new(count),
            renamed: vec![0; count.div_ceil(64)],
            explicit: BTreeMap::new(),
            limits,
            created: 0,
            name_bytes: 0,
            data_set_name_bytes: 0,
        };
        for (&id, name) in &collection.records {
            store.set(id, Name::Given(name.clone()), 0);
        }
        store.data_set_name_bytes = store.name_bytes;
        store
    }

    /// Records created by writes so far (ids the data set did not hold).
    pub fn created(&self) -> u64 {
        self.created
    }

    /// Bytes of names held beyond the data set's (0 when writes gave shorter names).
    pub fn written_name_bytes(&self) -> u64 {
        self.name_bytes.saturating_sub(self.data_set_name_bytes)
    }

    /// Answers `op` as the service would.
    #[inline]
    pub fn execute(&mut self, op: &Op) -> CallResult {
        match op {
            Op::Read { key } => match self.read(*key) {
                Some(record) => CallResult::Found(record),
                None => CallResult::NotFound,
            },
            Op::Write { key, name, version } => match self.write(*key, name.clone(), *version) {
                Ok(record) => CallResult::Written(record),
                Err(full) => CallResult::Rejected(full),
            },
        }
    }

    fn index(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        (index < self.generated.len).then_some(index)
    }

    fn is_renamed(&self, index: usize) -> bool {
        self.renamed[index / 64] & (1 << (index % 64)) != 0
    }

    /// The record with `id`, or `None` when the service has no such record.
    #[inline]
    pub fn read(&self, id: u64) -> Option<Record> {
        let name = match self.index(id) {
            Some(index) if !self.is_renamed(index) => Store::generated_name(self.resource, id),
            Some(index) => self.generated.get(index).0.clone(),
            None => self.explicit.get(&id)?.0.clone(),
        };
        Some(Record { id, name })
    }

    /// The version last applied to record `id` (0 for one never written).
    fn applied(&self, id: u64) -> u64 {
        match self.index(id) {
            Some(index) if self.is_renamed(index) => self.generated.get(index).1,
            Some(_) => 0,
            None => self.explicit.get(&id).map_or(0, |&(_, version)| version),
        }
    }

    /// Sets record `id`, creating it if needed; returns whether it was created.
    fn set(&mut self, id: u64, name: Name, version: u64) -> bool {
        self.name_bytes += name_bytes(&name);
        let old = match self.index(id) {
            Some(index) => {
                let old = if self.is_renamed(index) {
                    name_bytes(&self.generated.get(index).0)
                } else {
                    0
                };
                self.generated.set(index, (name, version));
                self.renamed[index / 64] |= 1 << (index % 64);
                Some(old)
            }
            None => self
                .explicit
                .insert(id, (name, version))
                .map(|(old, _)| name_bytes(&old)),
        };
        self.name_bytes -= old.unwrap_or(0);
        old.is_none()
    }

    /// What writing `name` to record `id` would pass of the store's limits, if anything.
    fn refusal(&self, id: u64, name: &Name) -> Option<StoreFull> {
        let limits = &self.limits;
        let (exists, old_bytes) = match self.index(id) {
            Some(index) if self.is_renamed(index) => {
                (true, name_bytes(&self.generated.get(index).0))
            }
            Some(_) => (true, 0),
            None => match self.explicit.get(&id) {
                Some((old, _)) => (true, name_bytes(old)),
                None => (false, 0),
            },
        };
        if !exists && self.created >= limits.max_new_records {
            return Some(StoreFull::NewRecords {
                limit: limits.max_new_records,
            });
        }
        let new_bytes = name_bytes(name);
        let held = (self.name_bytes - old_bytes).saturating_add(new_bytes);
        if new_bytes > old_bytes
            && held.saturating_sub(self.data_set_name_bytes) > limits.max_name_bytes
        {
            return Some(StoreFull::NameBytes {
                limit: limits.max_name_bytes,
                name_bytes: new_bytes,
            });
        }
        None
    }

    /// Sets the name of record `id` (creating it if needed) unless the record already
    /// holds a newer version; returns the record as it now stands, or, when applying
    /// the write would pass the store's limits, the refusal (and nothing changes).
    ///
    /// A write older than what the record holds is acknowledged whatever the limits:
    /// it changes nothing, so it cannot make the store hold more.
    pub fn write(&mut self, id: u64, name: Name, version: u64) -> Result<Record, StoreFull> {
        if self.applied(id) > version {
            return Ok(self.read(id).expect("a record with a version exists"));
        }
        if let Some(full) = self.refusal(id, &name) {
            return Err(full);
        }
        if self.set(id, name.clone(), version) {
            self.created += 1;
        }
        Ok(Record { id, name })
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

    fn limited(count: u64, records: &[(u64, &str)], limits: StoreLimits) -> Store {
        let collection = Collection {
            count,
            records: records
                .iter()
                .map(|&(id, name)| (id, Arc::from(name)))
                .collect(),
            warm: false,
        };
        Store::with_limits(Resource::Users, &collection, limits)
    }

    #[test]
    fn writes_create_records_up_to_the_limit_and_then_are_refused() {
        let limits = StoreLimits {
            max_new_records: 2,
            max_name_bytes: u64::MAX,
        };
        // Generated records 1..=3 and explicit record 9 are the data set.
        let mut store = limited(3, &[(9, "Nine")], limits);
        store.write(10, "Ten".into(), 1).unwrap();
        store.write(11, "Eleven".into(), 2).unwrap();
        assert_eq!(store.created(), 2);
        let refused = store.write(12, "Twelve".into(), 3);
        assert_eq!(refused, Err(StoreFull::NewRecords { limit: 2 }));
        assert_eq!(store.read(12), None, "a refused write changes nothing");
        assert_eq!(store.created(), 2);
        // Records that exist take writes: the data set's, generated or explicit, and
        // those writes created.
        for (id, version) in [(2, 4), (9, 5), (10, 6)] {
            let record = store.write(id, "Renamed".into(), version).unwrap();
            assert_eq!(record.name, "Renamed");
        }
        assert_eq!(store.read(2).unwrap().name, "Renamed");
        assert_eq!(store.created(), 2);
        assert_eq!(
            store.execute(&Op::Write {
                key: 13,
                name: "x".into(),
                version: 7
            }),
            CallResult::Rejected(StoreFull::NewRecords { limit: 2 })
        );
    }

    #[test]
    fn names_are_held_up_to_the_byte_limit_beyond_the_data_set() {
        let limits = StoreLimits {
            max_new_records: u64::MAX,
            max_name_bytes: 10,
        };
        // The data set's own names (8 bytes) do not count against the limit.
        let mut store = limited(2, &[(9, "Nine"), (1, "One!")], limits);
        store.write(20, "abcd".into(), 1).unwrap();
        store.write(21, "efgh".into(), 2).unwrap();
        assert_eq!(store.written_name_bytes(), 8);
        assert_eq!(
            store.write(22, "ijk".into(), 3),
            Err(StoreFull::NameBytes {
                limit: 10,
                name_bytes: 3
            })
        );
        assert_eq!(store.read(22), None);
        // Exactly at the limit is fine; a rename counts only what it adds.
        store.write(22, "ij".into(), 4).unwrap();
        assert_eq!(store.written_name_bytes(), 10);
        assert!(store.write(20, "abcde".into(), 5).is_err());
        store.write(20, "wxyz".into(), 6).unwrap();
        // Shortening frees bytes, and so does a generated name replacing a given one
        // (renaming a data set record shorter frees the data set's bytes too).
        store.write(21, "e".into(), 7).unwrap();
        store
            .write(9, Name::Generated(Resource::Users, 9), 8)
            .unwrap();
        assert_eq!(store.written_name_bytes(), 3);
        store.write(2, "abcdefg".into(), 9).unwrap();
        assert_eq!(store.written_name_bytes(), 10);
        // A write that lengthens nothing is taken even at the limit.
        store.write(1, "One!".into(), 10).unwrap();
        store
            .write(23, Name::Generated(Resource::Users, 23), 11)
            .unwrap();
        assert_eq!(store.written_name_bytes(), 10);
    }

    #[test]
    fn a_late_write_is_acknowledged_with_the_newer_record_even_when_full() {
        let limits = StoreLimits {
            max_new_records: 1,
            max_name_bytes: 4,
        };
        let mut store = limited(0, &[], limits);
        store.write(5, "Five".into(), 2).unwrap();
        // Older than what record 5 holds: it changes nothing, so no limit applies.
        let answer = store.write(5, "A much longer name".into(), 1).unwrap();
        assert_eq!(answer.name, "Five");
        assert_eq!(store.written_name_bytes(), 4);
    }

    #[test]
    fn an_unlimited_store_takes_every_write() {
        let mut store = Store::new(Resource::Users, &Collection::default());
        for id in 0..1000 {
            store.write(id, "a name".into(), id).unwrap();
        }
        assert_eq!(store.created(), 1000);
        assert_eq!(store.written_name_bytes(), 6000);
    }

    #[test]
    fn a_large_key_space_allocates_a_page_per_renamed_neighbourhood_only() {
        let collection = Collection {
            count: 1_000_000,
            records: BTreeMap::from([(7, Arc::from("Seven"))]),
            warm: false,
        };
        let mut store = Store::declared(&collection);
        let pages = |s: &Store| s.generated.pages.iter().filter(|p| p.is_some()).count();
        assert_eq!(pages(&store), 1, "the data set's record 7");
        store.write(999_999, "last but one".into(), 1).unwrap();
        store.write(1_000_000, "last".into(), 2).unwrap();
        store.write(8, "Eight".into(), 3).unwrap();
        assert_eq!(pages(&store), 2);
        assert_eq!(store.read(7).unwrap().name, "Seven");
        assert_eq!(store.read(8).unwrap().name, "Eight");
        assert_eq!(store.read(9).unwrap().name, "Record 9");
        assert_eq!(store.read(1_000_000).unwrap().name, "last");
        assert_eq!(store.read(1_000_001), None);
        assert_eq!(store.created(), 0, "every id written is in the key space");
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
        store.write(4, "Four".into(), 1).unwrap();
        assert_eq!(store.read(4).unwrap().name, "Four");
        // An older write arriving late is acknowledged with the newer record.
        store.write(4, "Newer".into(), 3).unwrap();
        let answer = store.write(4, "Older".into(), 2).unwrap();
        assert_eq!(answer.name, "Newer");
        assert_eq!(store.read(4).unwrap().name, "Newer");

        let data = DataSet {
            collections: [collection, Collection::default()],
        };
        let ids: Vec<u64> = data.warm_records().map(|(_, r)| r.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 9]);
    }
}
