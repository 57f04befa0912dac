//! Virtual network XML (`<network>`): model, parse → post-parse → validate → format.
