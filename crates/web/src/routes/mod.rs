pub mod clock;
pub mod health;
pub mod referrals;
pub mod tasks;
