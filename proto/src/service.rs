//! Service ids: `(class << 24) | instance`, as in luna's seed README (luna-spec §1.2).
//!
//! A *class* (1..=255) names a stage (`game`, `rank`, ...) on one router; an *instance* (1..2^24-1)
//! is the node that hosts it. A target whose instance is 0 addresses the whole class, and the
//! router picks members by the class's forwarding mode.

use std::fmt;

/// A 32-bit service id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ServiceId(pub u32);

/// Largest instance number (24 bits).
pub const MAX_INSTANCE: u32 = 0x00ff_ffff;

impl ServiceId {
    /// Builds the id of `instance` in `class`; instance 0 means "the class".
    pub fn new(class: u8, instance: u32) -> Option<ServiceId> {
        (instance <= MAX_INSTANCE).then_some(ServiceId(((class as u32) << 24) | instance))
    }

    /// The class (top byte).
    pub fn class(self) -> u8 {
        (self.0 >> 24) as u8
    }

    /// The instance (low 24 bits).
    pub fn instance(self) -> u32 {
        self.0 & MAX_INSTANCE
    }

    /// Whether this addresses the whole class rather than one member.
    pub fn is_class(self) -> bool {
        self.instance() == 0
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.class(), self.instance())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_and_instance_round_trip() {
        let id = ServiceId::new(5, 0x12_3456).unwrap();
        assert_eq!(id.0, 0x0512_3456);
        assert_eq!((id.class(), id.instance()), (5, 0x12_3456));
        assert!(ServiceId::new(5, 0).unwrap().is_class());
        assert!(ServiceId::new(1, MAX_INSTANCE + 1).is_none());
    }
}
