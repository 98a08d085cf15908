//! `Base64Bytes`: exact bytes carried in JSON as a standard (padded) base64 string.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes that travel as a base64 string (RFC 4648, standard alphabet, padded) in JSON.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Base64Bytes(pub Vec<u8>);

impl std::fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl From<Vec<u8>> for Base64Bytes {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map(Base64Bytes)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Base64Bytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Byte)))
            .description(Some("bytes as standard padded base64"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Base64Bytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_binary() {
        let b = Base64Bytes((0u8..=255).collect());
        let j = serde_json::to_string(&b).unwrap();
        let back: Base64Bytes = serde_json::from_str(&j).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn rejects_bad_base64() {
        let err = serde_json::from_str::<Base64Bytes>("\"@@@\"").unwrap_err();
        assert!(err.to_string().contains("invalid base64"), "{err}");
    }
}
