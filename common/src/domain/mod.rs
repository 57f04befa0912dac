//! Domain XML (`<domain>`): model, parse → post-parse (driver hooks) → validate → format.
