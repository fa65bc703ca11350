"""Fields: functions of 3D points to quantities (signed distance, occupancy, density, colour), from
Mosaic-SDF and its mesh fitting to NeRF, Occ-SDF and texture fields and the body prior."""
