-- SMART Scheduling Links: a specialist's $bulk-publish manifest, and what refloop last read
-- from it (a free slot's booking deep link and phone, the manifest's Last-Modified to send
-- back as If-Modified-Since, and the manifest URL those came from).
ALTER TABLE specialists ADD COLUMN scheduling_manifest TEXT;
ALTER TABLE specialists ADD COLUMN manifest_source TEXT;
ALTER TABLE specialists ADD COLUMN manifest_link TEXT;
ALTER TABLE specialists ADD COLUMN manifest_phone TEXT;
ALTER TABLE specialists ADD COLUMN manifest_modified TEXT;
