"""Data: everything between a raw file and the matrix a model sees.

datasets     versions (content-addressed Parquet), lineage, chunked ingest
schema       inferred column types, ranges, categories, roles; editable
validation   checks rows against a schema; diff compares two versions
cleaning     fitted, replayable steps (recipes) and ``clean`` versions
encoding     the feature encoder shared by training and serving
splits       random / stratified / grouped / time splits by row id
leakage      overlap, near-duplicate, target and time leakage checks
labels       annotator agreement, adjudication, revisions, likely mislabels
imbalance    class weights and resampling, with what they change
demo         the generated loan data set behind ``modelyard quickstart``
"""
