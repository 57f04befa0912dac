//! Storage pool (`<pool>`) and volume (`<volume>`) XML: models, parse → post-parse → validate → format.
