//! The resource registry the edge authorises against: the config file's resources plus
//! the store's, by type and id. Swapped whole when the store changes; a request takes a
//! snapshot with one lock-free load (arc-swap) and looks its `{rid}` up without
//! allocating. It owns the merge rule (the store wins on a clash) and never reads the
//! store itself: the store refresh hands it the stored resources.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::resource::{Resource, ResourceType};

/// Resources by type, then id: looked up with the borrowed `{rid}`, no allocation.
#[derive(Default)]
pub struct Registry(HashMap<ResourceType, HashMap<String, Resource>>);

impl Registry {
    pub fn new(resources: impl IntoIterator<Item = Resource>) -> Self {
        let mut map: HashMap<ResourceType, HashMap<String, Resource>> = HashMap::new();
        for r in resources {
            map.entry(r.resource_type)
                .or_default()
                .insert(r.id.clone(), r);
        }
        Registry(map)
    }

    pub fn get(&self, rty: ResourceType, id: &str) -> Option<&Resource> {
        self.0.get(&rty)?.get(id)
    }
}

/// The live registry and the config's resources it is rebuilt from.
pub struct Resources {
    live: ArcSwap<Registry>,
    /// Resources declared in the config file, kept to merge with each store reload.
    declared: Vec<Resource>,
}

impl Resources {
    pub fn new(declared: Vec<Resource>) -> Self {
        Resources {
            live: ArcSwap::from_pointee(Registry::new(declared.iter().cloned())),
            declared,
        }
    }

    /// The registry as of now; later swaps do not change it.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Registry>> {
        self.live.load()
    }

    /// Replace the registry with the declared resources plus `stored` (the store wins on
    /// a clash, since it is what operators change at run time).
    pub fn set_stored(&self, stored: impl IntoIterator<Item = Resource>) {
        let all = self.declared.iter().cloned().chain(stored);
        self.live.store(Arc::new(Registry::new(all)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(id: &str, org: &str) -> Resource {
        Resource {
            id: id.into(),
            resource_type: ResourceType::Vod,
            org: org.into(),
            project: None,
            public: false,
            published: true,
        }
    }

    #[test]
    fn the_store_wins_over_the_config_and_a_snapshot_does_not_move() {
        let resources = Resources::new(vec![resource("a", "config"), resource("b", "config")]);
        let before = resources.snapshot();
        resources.set_stored([resource("a", "store")]);
        let after = resources.snapshot();
        let org = |r: &Registry, id: &str| r.get(ResourceType::Vod, id).map(|r| r.org.clone());
        assert_eq!(org(&after, "a").as_deref(), Some("store"));
        assert_eq!(org(&after, "b").as_deref(), Some("config"));
        assert_eq!(org(&before, "a").as_deref(), Some("config"));
        assert!(after.get(ResourceType::Live, "a").is_none());
    }
}
