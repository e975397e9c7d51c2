//! The three token-issuing APIs tollgate speaks, one file each. A dialect owns only its
//! wire format: parsing and validating requests, rendering answers and errors in its own
//! shape. Authentication, the store and signing are the admin router's and the issuer's.

pub mod azure;
pub mod blendvision;
pub mod movingimage;
