// Placeholder source for a layer that has no code yet (CMake needs at least one source per library).
