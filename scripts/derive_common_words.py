"""Derive replica/prepare/data/common_words/<lang>.txt: the everyday words of each language, one per line.

A word is kept when it is frequent (wordfreq Zipf frequency >= 4.0, i.e. at least 10 uses per million words) and
the language's Hunspell dictionary accepts it written in lowercase. The second test drops first names that are only
frequent because people are called so ("luca", "giulia": the dictionary knows them capitalized only); surnames that
are rarer words ("ferri", 3.8) stay out by frequency. The masking keeps a contact-name token written in lowercase
when it is one of these words ("maglietta rosa") and masks it when capitalized ("Rosa").

Run once when the lists should change (not at run time):
    pip install wordfreq spylls && apt-get install hunspell-it hunspell-en-us hunspell-fr hunspell-es \
        hunspell-de-de hunspell-pt-pt
    python scripts/derive_common_words.py
"""

from __future__ import annotations

from pathlib import Path

from spylls.hunspell import Dictionary
from wordfreq import top_n_list, zipf_frequency

HUNSPELL = {"it": "it_IT", "en": "en_US", "fr": "fr", "es": "es_ES", "de": "de_DE", "pt": "pt_PT"}
MIN_ZIPF = 4.0
CANDIDATES = 30_000  # wordfreq's most frequent words examined per language
OUT = Path(__file__).resolve().parents[1] / "replica" / "prepare" / "data" / "common_words"


def common_words(language: str, dictionary: Dictionary) -> list[str]:
    words = []
    for word in top_n_list(language, CANDIDATES):
        if zipf_frequency(word, language) < MIN_ZIPF:
            break
        if word.isalpha() and len(word) >= 3 and dictionary.lookup(word):
            words.append(word)
    return sorted(set(words))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for language, name in HUNSPELL.items():
        words = common_words(language, Dictionary.from_files(f"/usr/share/hunspell/{name}"))
        (OUT / f"{language}.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        print(f"{language}: {len(words)} words")


if __name__ == "__main__":
    main()
