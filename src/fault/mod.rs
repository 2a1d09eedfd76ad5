//! One module per fault kind, each with inject() and heal().
