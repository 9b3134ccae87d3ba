"""A labelled corpus for `nhiguard eval`: weeks of several organisations' ordinary activity in the sources'
own formats, with benign classes that look odd and attack classes, each record labelled `benign:<class>` or
`attack:<class>` outside its body. Classes and their parameter ranges: tools/corpus/classes.py.

Pure Python (stdlib + pyyaml), built on the demo generator's format builders (tools/scenarios).
"""

from tools.corpus.classes import ATTACK_CLASSES, BENIGN_CLASSES, CLASSES, CorpusClass
from tools.corpus.generate import generate_corpus, write_corpus

__all__ = ["ATTACK_CLASSES", "BENIGN_CLASSES", "CLASSES", "CorpusClass", "generate_corpus", "write_corpus"]
