//! The service registry: contract trait objects by type and by spec service name, plus many-valued contributions.
//!
//! Plugins register during `init`, while the registry is a mutable staging area behind a mutex.
//! When every plugin has run `init`, the kernel freezes it into an immutable snapshot stored in a
//! `OnceLock`; from then on lookups are an atomic load plus a hash lookup, with no lock, and any
//! attempt to register is an error. The kernel never names a concrete service type: values are
//! stored as `Box<dyn Any>` holding an `Arc<T>` (where `T` is usually `dyn SomeContract`) and keyed
//! by `TypeId::of::<T>()`.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::error::KernelError;
use crate::hash::FxBuild;

/// One value contributed by a plugin (an HTTP route set, an interceptor, a migration...).
#[derive(Debug, Clone)]
pub struct Contribution<T> {
    /// Id of the contributing plugin.
    pub plugin: String,
    pub value: T,
}

/// What a registered service is, for listings and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub name: String,
    pub provider: String,
    pub type_name: &'static str,
}

struct Entry {
    name: Box<str>,
    provider: Box<str>,
    type_id: TypeId,
    type_name: &'static str,
    /// Always an `Arc<T>` where `TypeId::of::<T>() == type_id`.
    value: Box<dyn Any + Send + Sync>,
}

/// Type-erased list of contributions of one type, so the kernel can drop a failed plugin's entries.
trait ErasedContributions: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn remove_plugin(&mut self, plugin: &str);
}

impl<T: Send + Sync + 'static> ErasedContributions for Vec<Contribution<T>> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn remove_plugin(&mut self, plugin: &str) {
        self.retain(|c| c.plugin != plugin);
    }
}

enum TypeSlot {
    One(usize),
    Many(Vec<usize>),
}

type TypeMap<V> = HashMap<TypeId, V, FxBuild>;

#[derive(Default)]
struct Staging {
    entries: Vec<Entry>,
    contributions: TypeMap<Box<dyn ErasedContributions>>,
}

struct Snapshot {
    entries: Vec<Entry>,
    by_type: TypeMap<TypeSlot>,
    by_name: HashMap<Box<str>, usize, FxBuild>,
    contributions: TypeMap<Box<dyn ErasedContributions>>,
}

/// The registry of services and contributions.
pub struct ServiceRegistry {
    staging: Mutex<Option<Staging>>,
    frozen: OnceLock<Snapshot>,
}

impl Default for ServiceRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ServiceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceRegistry")
            .field("frozen", &self.is_frozen())
            .field("services", &self.services())
            .finish()
    }
}

impl ServiceRegistry {
    /// An empty, open registry.
    pub fn new() -> Self {
        Self {
            staging: Mutex::new(Some(Staging::default())),
            frozen: OnceLock::new(),
        }
    }

    /// Registers `value` under the service `name` and under the type `T` (usually `dyn Contract`).
    ///
    /// One name has one provider. One type may appear under several names; a typed lookup then
    /// reports the ambiguity and asks for a named lookup.
    pub fn register<T>(&self, provider: &str, name: &str, value: Arc<T>) -> Result<(), KernelError>
    where
        T: ?Sized + Send + Sync + 'static,
    {
        let mut staging = self.staging.lock();
        let Some(staging) = staging.as_mut() else {
            return Err(KernelError::RegistryFrozen {
                plugin: provider.to_owned(),
                what: format!("register service `{name}`"),
            });
        };
        if let Some(existing) = staging.entries.iter().find(|e| &*e.name == name) {
            return Err(KernelError::DuplicateServiceRegistration {
                service: name.to_owned(),
                first: existing.provider.to_string(),
                second: provider.to_owned(),
            });
        }
        staging.entries.push(Entry {
            name: name.into(),
            provider: provider.into(),
            type_id: TypeId::of::<T>(),
            type_name: type_name::<T>(),
            value: Box::new(value),
        });
        Ok(())
    }

    /// Adds one contribution of type `T`; all contributions of a type are read back together.
    pub fn contribute<T>(&self, provider: &str, value: T) -> Result<(), KernelError>
    where
        T: Send + Sync + 'static,
    {
        let mut staging = self.staging.lock();
        let Some(staging) = staging.as_mut() else {
            return Err(KernelError::RegistryFrozen {
                plugin: provider.to_owned(),
                what: format!("contribute a `{}`", type_name::<T>()),
            });
        };
        let list = staging
            .contributions
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(Vec::<Contribution<T>>::new()));
        // The map is keyed by `TypeId::of::<T>()`, so the downcast cannot miss; a miss would only
        // drop this contribution, never corrupt the registry.
        if let Some(list) = list.as_any_mut().downcast_mut::<Vec<Contribution<T>>>() {
            list.push(Contribution {
                plugin: provider.to_owned(),
                value,
            });
        }
        Ok(())
    }

    /// Drops everything `provider` registered or contributed (used when its `init` fails).
    ///
    /// Does nothing once frozen.
    pub fn remove_provider(&self, provider: &str) {
        if let Some(staging) = self.staging.lock().as_mut() {
            staging.entries.retain(|e| &*e.provider != provider);
            for list in staging.contributions.values_mut() {
                list.remove_plugin(provider);
            }
        }
    }

    /// Names `provider` has registered so far.
    pub fn names_of(&self, provider: &str) -> Vec<String> {
        self.services()
            .into_iter()
            .filter(|s| s.provider == provider)
            .map(|s| s.name)
            .collect()
    }

    /// Freezes the registry: lookups become lock-free and registration is refused. Idempotent.
    pub fn freeze(&self) {
        let Some(staging) = self.staging.lock().take() else {
            return;
        };
        let mut by_type: TypeMap<TypeSlot> = HashMap::with_hasher(BuildHasherDefault::default());
        let mut by_name = HashMap::with_hasher(BuildHasherDefault::default());
        for (i, e) in staging.entries.iter().enumerate() {
            by_name.insert(e.name.clone(), i);
            match by_type.get_mut(&e.type_id) {
                None => {
                    by_type.insert(e.type_id, TypeSlot::One(i));
                }
                Some(TypeSlot::One(first)) => {
                    let first = *first;
                    by_type.insert(e.type_id, TypeSlot::Many(vec![first, i]));
                }
                Some(TypeSlot::Many(list)) => list.push(i),
            }
        }
        let snapshot = Snapshot {
            entries: staging.entries,
            by_type,
            by_name,
            contributions: staging.contributions,
        };
        // `take()` above succeeds once, so the cell is always empty here.
        let _ = self.frozen.set(snapshot);
    }

    /// True once [`ServiceRegistry::freeze`] ran.
    pub fn is_frozen(&self) -> bool {
        self.frozen.get().is_some()
    }

    fn snapshot(&self, service: &str) -> Result<&Snapshot, KernelError> {
        self.frozen
            .get()
            .ok_or_else(|| KernelError::RegistryNotReady {
                service: service.to_owned(),
            })
    }

    /// The service registered with type `T`, with its name, borrowed from the frozen snapshot.
    pub fn get_entry<T>(&self) -> Result<(&str, &Arc<T>), KernelError>
    where
        T: ?Sized + Send + Sync + 'static,
    {
        let snap = self.snapshot(type_name::<T>())?;
        let entry = match snap.by_type.get(&TypeId::of::<T>()) {
            Some(TypeSlot::One(i)) => &snap.entries[*i],
            Some(TypeSlot::Many(list)) => {
                return Err(KernelError::AmbiguousService {
                    type_name: type_name::<T>(),
                    names: list
                        .iter()
                        .map(|i| snap.entries[*i].name.to_string())
                        .collect(),
                });
            }
            None => {
                return Err(KernelError::ServiceNotFound {
                    service: type_name::<T>().to_owned(),
                });
            }
        };
        let value = entry.value.downcast_ref::<Arc<T>>().ok_or_else(|| {
            KernelError::ServiceTypeMismatch {
                service: entry.name.to_string(),
                registered: entry.type_name,
                requested: type_name::<T>(),
            }
        })?;
        Ok((&entry.name, value))
    }

    /// The service registered with type `T`.
    #[inline]
    pub fn get<T>(&self) -> Result<Arc<T>, KernelError>
    where
        T: ?Sized + Send + Sync + 'static,
    {
        self.get_entry::<T>().map(|(_, v)| v.clone())
    }

    /// The service registered under `name`, borrowed from the frozen snapshot; it must have type `T`.
    pub fn get_named_ref<T>(&self, name: &str) -> Result<&Arc<T>, KernelError>
    where
        T: ?Sized + Send + Sync + 'static,
    {
        let snap = self.snapshot(name)?;
        let entry = snap
            .by_name
            .get(name)
            .map(|i| &snap.entries[*i])
            .ok_or_else(|| KernelError::ServiceNotFound {
                service: name.to_owned(),
            })?;
        entry
            .value
            .downcast_ref::<Arc<T>>()
            .ok_or_else(|| KernelError::ServiceTypeMismatch {
                service: name.to_owned(),
                registered: entry.type_name,
                requested: type_name::<T>(),
            })
    }

    /// The service registered under `name`; it must have type `T`.
    #[inline]
    pub fn get_named<T>(&self, name: &str) -> Result<Arc<T>, KernelError>
    where
        T: ?Sized + Send + Sync + 'static,
    {
        self.get_named_ref::<T>(name).cloned()
    }

    /// Every contribution of type `T`, in registration order (empty if there are none).
    pub fn contributions<T>(&self) -> Result<&[Contribution<T>], KernelError>
    where
        T: Send + Sync + 'static,
    {
        let snap = self.snapshot(type_name::<T>())?;
        Ok(snap
            .contributions
            .get(&TypeId::of::<T>())
            .and_then(|list| list.as_any().downcast_ref::<Vec<Contribution<T>>>())
            .map_or(&[][..], Vec::as_slice))
    }

    /// Every registered service, in registration order.
    pub fn services(&self) -> Vec<ServiceInfo> {
        let describe = |e: &Entry| ServiceInfo {
            name: e.name.to_string(),
            provider: e.provider.to_string(),
            type_name: e.type_name,
        };
        if let Some(snap) = self.frozen.get() {
            snap.entries.iter().map(describe).collect()
        } else {
            self.staging
                .lock()
                .as_ref()
                .map(|s| s.entries.iter().map(describe).collect())
                .unwrap_or_default()
        }
    }
}
