//! Route matching: the longest configured prefix wins; a `{rid}` template takes the next
//! path segment as the resource id.
//!
//! Routes are sorted once at build time, longest prefix first, so matching is a scan of
//! a few `starts_with` calls with no allocation.

use crate::config;
use crate::resource::ResourceType;

struct Entry {
    index: usize,
    name: String,
    prefix: String,
    has_rid: bool,
    resource_type: ResourceType,
    origin: usize,
    public: bool,
    native: bool,
    formats: Vec<usize>,
}

/// A matched route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'t, 'p> {
    /// The route's position in the configuration (what per-route state is indexed by).
    pub index: usize,
    /// The route's name (a log and metric label).
    pub name: &'t str,
    /// The route's path prefix (`/vod/` of `/vod/{rid}/`).
    pub prefix: &'t str,
    pub resource_type: ResourceType,
    /// The `{rid}` segment, borrowed from the path.
    pub rid: Option<&'p str>,
    pub origin: usize,
    pub public: bool,
    /// Accepts the native token.
    pub native: bool,
    /// The foreign formats accepted here (indices into the configured formats).
    pub formats: &'t [usize],
}

pub struct RouteTable {
    entries: Vec<Entry>,
}

impl RouteTable {
    pub fn new(routes: &[config::Route]) -> Self {
        let mut entries: Vec<Entry> = routes
            .iter()
            .enumerate()
            .map(|(index, r)| Entry {
                index,
                name: r.name.clone(),
                prefix: r.prefix.clone(),
                has_rid: r.has_rid,
                resource_type: r.resource_type,
                origin: r.origin,
                public: r.public,
                native: r.native,
                formats: r.formats.clone(),
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.prefix.len()));
        RouteTable { entries }
    }

    /// The longest matching route for a normalised path.
    pub fn find<'p>(&self, path: &'p str) -> Option<Match<'_, 'p>> {
        for e in &self.entries {
            let Some(rest) = path.strip_prefix(e.prefix.as_str()) else {
                continue;
            };
            let rid = if e.has_rid {
                // `{rid}` must be a whole, non-empty segment followed by '/'.
                let (rid, _) = rest.split_once('/')?;
                if rid.is_empty() {
                    return None;
                }
                Some(rid)
            } else {
                None
            };
            return Some(Match {
                index: e.index,
                name: &e.name,
                prefix: &e.prefix,
                resource_type: e.resource_type,
                rid,
                origin: e.origin,
                public: e.public,
                native: e.native,
                formats: &e.formats,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, prefix: &str, has_rid: bool, t: ResourceType) -> config::Route {
        config::Route {
            name: name.into(),
            prefix: prefix.into(),
            has_rid,
            resource_type: t,
            origin: 0,
            public: false,
            per_ip: None,
            per_subject: None,
            cache: false,
            native: true,
            formats: Vec::new(),
        }
    }

    #[test]
    fn the_longest_prefix_wins_and_rid_is_a_whole_segment() {
        let t = RouteTable::new(&[
            route("vod", "/vod/", true, ResourceType::Vod),
            route("events", "/vod/events/", true, ResourceType::VodEvent),
        ]);
        let m = t.find("/vod/events/e1/master.m3u8").expect("match");
        assert_eq!((m.name, m.rid), ("events", Some("e1")));
        let m = t.find("/vod/demo/v0/seg.ts").expect("match");
        assert_eq!((m.name, m.rid), ("vod", Some("demo")));
        assert_eq!(t.find("/vod/demo"), None, "rid must be followed by a slash");
        assert_eq!(t.find("/vod//x"), None);
        assert_eq!(t.find("/live/demo/x"), None);
        assert_eq!(t.find("/VOD/demo/x"), None, "paths are case-sensitive");
    }
}
