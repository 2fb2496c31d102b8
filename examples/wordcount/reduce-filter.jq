# Execution filter (gate) of the word-count reduce step: EXECUTION_FILTER_FILE in reduce.env.
#
# Input: the listing of the group prefix jobs/<job>/ (an array of S3 objects: Key, Size,
# ETag, LastModified, ...). jq sees keys and sizes, never contents, so the expected number
# of inputs is carried by the manifest's KEY: jobs/<job>/manifest-<N>.json, uploaded by the
# producer BEFORE any input.
#
# Output: true (run the reduce) only when
#   - there is exactly one manifest-<N>.json,
#   - exactly N inputs jobs/<job>/input/<name>.txt are present, and
#   - every one of them has its jobs/<job>/counts/<name>.json;
# false (skip: nothing pulled, nothing run, a success) otherwise.
#
# Comparing "inputs present" with "counts present" alone would open early while an input
# is still on its way (2 of 3 uploaded and counted looks complete): N is what closes it.

def names(pattern): [.[] | .Key | capture(pattern) | .name] | unique;

names("^jobs/[^/]+/input/(?<name>[^/]+)\\.txt$") as $inputs
| names("^jobs/[^/]+/counts/(?<name>[^/]+)\\.json$") as $counts
| [.[] | .Key | capture("^jobs/[^/]+/manifest-(?<n>[0-9]+)\\.json$") | .n | tonumber]
  as $manifests
| ($manifests | length) == 1
  and ($inputs | length) == $manifests[0]
  and ($inputs - $counts) == []
