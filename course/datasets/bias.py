"""Word lists and one measurement for the bias a pretrained encoder brings along.

:func:`gender_association` embeds occupation sentences and gendered sentences with any
``encode(texts) -> (N, C)`` function of unit vectors, and returns for each occupation the mean
cosine similarity to the female sentences minus the mean to the male ones. A model without a
gender association would give values scattered around 0 with no pattern; a consistent sign along
stereotypes (nurse, receptionist vs engineer, carpenter) is the bias the text of the web taught.
"""

from __future__ import annotations

FEMALE = ("she", "her", "woman", "mother", "daughter", "girl", "sister", "wife")
MALE = ("he", "him", "man", "father", "son", "boy", "brother", "husband")
OCCUPATIONS = ("nurse", "receptionist", "librarian", "hairdresser", "secretary", "dancer",
               "teacher", "doctor", "lawyer", "scientist", "programmer", "engineer",
               "carpenter", "mechanic", "pilot", "plumber")


def sentences(words, template: str = "this is about the {}.") -> list[str]:
    return [template.format(w) for w in words]


def gender_association(encode) -> dict[str, float]:
    """{occupation: mean cos(occupation, female) - mean cos(occupation, male)} for
    ``encode(list of texts) -> (N, C)`` unit vectors."""
    occ = encode(sentences(OCCUPATIONS))                   # (O, C)
    female = encode(sentences(FEMALE))                     # (F, C)
    male = encode(sentences(MALE))                         # (M, C)
    gap = (occ @ female.T).mean(1) - (occ @ male.T).mean(1)  # (O,)
    return dict(zip(OCCUPATIONS, gap.tolist()))
