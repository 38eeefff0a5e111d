"""Packaging for stemdefect_nb: everything is read from settings.ini (nbdev 2 layout).

No `pkg_resources` here (it is gone from setuptools 82); requirement strings are parsed with
`packaging`, which pip and setuptools both ship.
"""
from configparser import ConfigParser
from pathlib import Path

import setuptools

here = Path(__file__).parent
config = ConfigParser(delimiters=['='])
config.read(here/'settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

licenses = {'apache2': 'Apache-2.0'}   # SPDX expression (license classifiers are deprecated)
statuses = ['Planning', 'Pre-Alpha', 'Alpha', 'Beta', 'Production/Stable', 'Mature', 'Inactive']
lic = licenses[cfg['license']]
py_versions = '3.10 3.11 3.12 3.13'.split()


def _reqs(key):
    "Requirements listed (space separated) under `key` in settings.ini."
    out = []
    for r in cfg.get(key, '').split():
        if r.startswith('tensorflow>='):
            # the CPU build is smaller and all the package needs on Linux x86-64
            ver = r[len('tensorflow'):]
            out += [f'tensorflow-cpu{ver}; sys_platform == "linux" and platform_machine == "x86_64"',
                    f'tensorflow{ver}; sys_platform != "linux" or platform_machine != "x86_64"']
        else:
            out.append(r)
    return out


def _extras():
    "Every `NAME_requirements` key of settings.ini is the extra NAME: {'dev': [...], 'hyperspy': [...]}."
    return {k[:-len('_requirements')]: _reqs(k) for k in cfg if k.endswith('_requirements')
            and k not in ('pip_requirements', 'conda_requirements')}     # nbdev's own keys, not extras


min_python = cfg['min_python']
setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=(here/'README.md').read_text(encoding='utf-8') if (here/'README.md').exists() else '',
    long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'],
    license=lic,
    url=cfg['git_url'],
    keywords=cfg['keywords'].split(),
    classifiers=['Development Status :: ' + str(cfg['status']) + ' - ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'],
                 'Natural Language :: ' + cfg['language'],
                 'Topic :: Scientific/Engineering :: Physics',
                 'Topic :: Scientific/Engineering :: Image Recognition']
                + ['Programming Language :: Python :: ' + v for v in py_versions[py_versions.index(min_python):]],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True,
    install_requires=_reqs('requirements'),
    extras_require=_extras(),
    python_requires='>=' + min_python,
    zip_safe=False,
    entry_points={
        'console_scripts': cfg.get('console_scripts', '').split(),
        'nbdev': [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d'],
    },
)
