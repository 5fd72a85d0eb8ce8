"""`couchwatch evaluate`: the fleet's own code (planners, training, scoring) on in-memory twins
(`fleet`), and the labeled evaluation of what it scores against the seed pipeline (`run`)."""
