"""The cohort QC review page: a self-contained HTML page (opens from ``file://``) built from a batch output folder.

* :mod:`.collect` finds the case JSONs (and the failed cases of the batch summary) and where their images are;
* :mod:`.slices` reads a case's DWI, ADC, mask and reference and turns them into compressed display slices;
* :mod:`.page` writes ``review.html`` and its ``review_files/`` folder;
* :mod:`.decisions` reads back the accept / reject / needs-edit CSV the page exports.
"""
