//! `MemorySize`: a byte count given as a number of bytes or a string such as `512Mi`, `1g`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A memory size in bytes. Accepts a JSON number (bytes) or a string with an optional unit:
/// `k`/`m`/`g` (powers of 1000), `Ki`/`Mi`/`Gi` (powers of 1024), or `b`. Serializes as a number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemorySize(pub u64);

impl std::str::FromStr for MemorySize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 =
            num.parse().map_err(|_| format!("invalid memory size {s:?}: expected e.g. 536870912, 512Mi or 1G"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "m" | "mb" => 1_000_000,
            "g" | "gb" => 1_000_000_000,
            "ki" | "kib" => 1 << 10,
            "mi" | "mib" => 1 << 20,
            "gi" | "gib" => 1 << 30,
            other => return Err(format!("invalid memory unit {other:?} in {s:?}")),
        };
        n.checked_mul(mult).map(MemorySize).ok_or_else(|| format!("memory size {s:?} is too large"))
    }
}

impl Serialize for MemorySize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(MemorySize(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for MemorySize {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                utoipa::openapi::schema::Type::Integer,
                utoipa::openapi::schema::Type::String,
            ]))
            .description(Some("bytes, as a number or a string with a unit: 512Mi, 1Gi, 500m, 2g"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for MemorySize {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("512Mi".parse::<MemorySize>().unwrap().0, 512 << 20);
        assert_eq!("1g".parse::<MemorySize>().unwrap().0, 1_000_000_000);
        assert_eq!("1024".parse::<MemorySize>().unwrap().0, 1024);
        assert!("12 parsecs".parse::<MemorySize>().is_err());
        assert!("".parse::<MemorySize>().is_err());
        assert!("99999999999999999999Gi".parse::<MemorySize>().is_err());
    }

    #[test]
    fn deserializes_number_or_string() {
        let a: MemorySize = serde_json::from_str("1048576").unwrap();
        let b: MemorySize = serde_json::from_str("\"1Mi\"").unwrap();
        assert_eq!(a, b);
    }
}
