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

/// Characters a stage name may not contain: they are signal-target syntax (stage-spec §8).
pub const NAME_SYNTAX: [char; 8] = [':', '+', '=', '*', '@', '!', '>', '<'];

/// Checks a stage name: 1..=255 bytes, none of [`NAME_SYNTAX`], no control characters.
pub fn check_stage_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!("stage name '{name}' must be 1..255 bytes"));
    }
    if name.contains(NAME_SYNTAX) || name.chars().any(char::is_control) {
        return Err(format!(
            "stage name '{name}' may not contain control characters or any of : + = * @ ! > < (they are signal syntax)"
        ));
    }
    Ok(())
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

    #[test]
    fn stage_names() {
        assert!(check_stage_name("game_1.x").is_ok());
        for bad in ["", "a:b", "a+b", "x\n", &"n".repeat(256)] {
            assert!(check_stage_name(bad).is_err(), "{bad:?}");
        }
    }
}
