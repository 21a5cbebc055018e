//! Tool arguments with declared ranges. The schema a client sees and the check the server makes
//! come from one type, so a tool never runs with a value its schema forbids: deserialisation
//! fails and the client gets a JSON-RPC invalid-params error.

use std::borrow::Cow;

use rmcp::schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::Error;
use serde::{Deserialize, Deserializer};

/// An integer in `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: u32, const MAX: u32>(pub u32);

impl<'de, const MIN: u32, const MAX: u32> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        if value < u64::from(MIN) || value > u64::from(MAX) {
            return Err(D::Error::custom(format!("{value} is outside {MIN}..={MAX}")));
        }
        Ok(Self(value as u32))
    }
}

impl<const MIN: u32, const MAX: u32> JsonSchema for Bounded<MIN, MAX> {
    fn schema_name() -> Cow<'static, str> {
        format!("Integer{MIN}To{MAX}").into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": MIN, "maximum": MAX })
    }
}

/// A number of seconds in `0..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds<const MAX: u32>(pub f64);

impl<'de, const MAX: u32> Deserialize<'de> for Seconds<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !(0.0..=f64::from(MAX)).contains(&value) {
            return Err(D::Error::custom(format!("{value} is outside 0..={MAX}")));
        }
        Ok(Self(value))
    }
}

impl<const MAX: u32> JsonSchema for Seconds<MAX> {
    fn schema_name() -> Cow<'static, str> {
        format!("Seconds0To{MAX}").into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "number", "minimum": 0, "maximum": MAX })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_outside_the_declared_range_do_not_deserialize() {
        assert_eq!(serde_json::from_value::<Bounded<1, 1000>>(json!(1000)).unwrap(), Bounded(1000));
        for bad in [json!(0), json!(1001), json!(4_000_000_000u64), json!(-1), json!(2.5), json!("5")] {
            assert!(serde_json::from_value::<Bounded<1, 1000>>(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(serde_json::from_value::<Seconds<600>>(json!(0.5)).unwrap(), Seconds(0.5));
        for bad in [json!(-0.1), json!(600.5), json!(1e300)] {
            assert!(serde_json::from_value::<Seconds<600>>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_schema_declares_the_range() {
        let schema = serde_json::to_value(rmcp::schemars::schema_for!(Bounded<1, 1000>)).unwrap();
        assert_eq!((schema["minimum"].clone(), schema["maximum"].clone()), (json!(1), json!(1000)));
    }
}
