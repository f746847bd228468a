//! [`TopicName`]: the topic's name as records and metadata carry it.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use smol_str::SmolStr;

/// A topic's name, as [`ConsumerRecord`](crate::ConsumerRecord),
/// [`ConsumerBatch`](crate::ConsumerBatch) and
/// [`RecordMetadata`](crate::RecordMetadata) carry it: read it as a `&str`
/// (it dereferences to one, and compares with `str` and `String`).
///
/// Every record of a poll carries its topic, so a clone must be cheap: a
/// name of up to 23 bytes is held in the value itself and cloned by a
/// copy, with no reference count touched (with an `Arc<str>`, the count's
/// atomic increment and decrement cost a poll of 100 B records about a
/// fifth of its time). A longer name is shared behind a reference count.
///
/// ```
/// use streamlog::TopicName;
/// let name = TopicName::from("orders");
/// assert_eq!(name, "orders");
/// assert_eq!(name.len(), 6);
/// let s: &str = &name;
/// assert_eq!(s, "orders");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct TopicName(SmolStr);

impl TopicName {
    /// The name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for TopicName {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

// As `str` hashes, so that `Borrow<str>` lookups in hash maps agree.
impl Hash for TopicName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<&str> for TopicName {
    fn from(name: &str) -> TopicName {
        TopicName(SmolStr::new(name))
    }
}

impl From<String> for TopicName {
    fn from(name: String) -> TopicName {
        TopicName(SmolStr::from(name))
    }
}

impl From<&String> for TopicName {
    fn from(name: &String) -> TopicName {
        TopicName(SmolStr::new(name))
    }
}

impl From<TopicName> for String {
    fn from(name: TopicName) -> String {
        name.0.into()
    }
}

/// `name == "orders"` and the like, both ways round.
macro_rules! eq_str {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for TopicName {
            fn eq(&self, other: &$t) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }
        impl PartialEq<TopicName> for $t {
            fn eq(&self, other: &TopicName) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}
eq_str!(str, &str, String);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn compares_hashes_and_prints_as_its_str() {
        let short = TopicName::from("orders");
        let long = TopicName::from("a".repeat(200));
        assert_eq!(short, "orders");
        assert_eq!("orders", short);
        assert_eq!(String::from("orders"), short);
        assert_eq!(long.len(), 200);
        assert_eq!(long.clone(), long);
        assert!(short < long.clone() || short > long);
        let map: HashMap<TopicName, u32> = [(short.clone(), 1)].into();
        assert_eq!(map.get("orders"), Some(&1));
        assert_eq!(format!("{short} {short:?}"), "orders \"orders\"");
        assert_eq!(String::from(long), "a".repeat(200));
    }
}
