// Part of the layering fixture: a cuda header.
