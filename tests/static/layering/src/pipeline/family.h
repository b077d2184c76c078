// Part of the layering fixture: a pipeline header for core/upward.cpp to include.
