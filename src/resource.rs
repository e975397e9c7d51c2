//! The resources the gate serves and the types routes and tokens speak of.
//!
//! A leaf: plain domain types shared by `config` (resources declared in the file, the
//! type a route serves), `store` (resources kept in the database), `token` (the `rty`
//! claim, resource-scoped authorisation) and the edge's registry. It owns no I/O and
//! imports no other module of the crate.

/// The resource types routes and tokens speak of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Live,
    Vod,
    LiveEvent,
    LiveEventRecording,
    VodEvent,
    AudioEvent,
    VodEncoding,
}

impl ResourceType {
    /// Types whose playlists change while they are watched (a player reloads them).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Live | Self::LiveEvent | Self::AudioEvent)
    }

    /// Every type, in declaration order: the shipped config routes each of them.
    pub const ALL: [ResourceType; 7] = [
        Self::Live,
        Self::Vod,
        Self::LiveEvent,
        Self::LiveEventRecording,
        Self::VodEvent,
        Self::AudioEvent,
        Self::VodEncoding,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "live" => Self::Live,
            "vod" => Self::Vod,
            "live_event" => Self::LiveEvent,
            "live_event_recording" => Self::LiveEventRecording,
            "vod_event" => Self::VodEvent,
            "audio_event" => Self::AudioEvent,
            "vod_encoding" => Self::VodEncoding,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Vod => "vod",
            Self::LiveEvent => "live_event",
            Self::LiveEventRecording => "live_event_recording",
            Self::VodEvent => "vod_event",
            Self::AudioEvent => "audio_event",
            Self::VodEncoding => "vod_encoding",
        }
    }
}

/// A resource the edge serves (declared in the config file or held in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub id: String,
    pub resource_type: ResourceType,
    pub org: String,
    pub project: Option<String>,
    /// `public` resources need no token; `token` ones do.
    pub public: bool,
    /// Unpublished resources get resource tokens only through the admin variant of the
    /// API. Resources declared in the config file are published.
    pub published: bool,
}

/// A resource's privacy as the config file and the management API spell it: `"public"`
/// (no token needed) or `"token"`. Returns whether the resource is public.
pub fn parse_privacy(s: &str) -> Option<bool> {
    match s {
        "public" => Some(true),
        "token" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types_round_trip_through_their_names() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::parse(t.as_str()), Some(t));
        }
        assert_eq!(ResourceType::parse("Vod"), None);
    }

    #[test]
    fn privacy_is_public_or_token() {
        assert_eq!(parse_privacy("public"), Some(true));
        assert_eq!(parse_privacy("token"), Some(false));
        assert_eq!(parse_privacy("private"), None);
    }
}
