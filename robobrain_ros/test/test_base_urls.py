"""One check of model server base URLs: the launch file, the node's server.base_urls and the client refuse alike."""

import pytest

from robobrain_ros.launch_plan import LaunchArgumentError, parse_server_urls
from robobrain_ros.model_client import ChatClient, ClientConfig
from robobrain_ros.model_client.base_urls import base_url_problem, base_urls_problem, split_base_urls

GOOD = ['http://127.0.0.1:9010/v1', 'https://brain.example.org/v1', 'http://[::1]:9010/v1', 'http://gpu-host']
BAD = {
    'notaurl': 'not an http(s) URL with a host',
    'ftp://host/v1': 'not an http(s) URL with a host',
    'http:///v1': 'not an http(s) URL with a host',
    'http://host:port/v1': 'not a URL',
    'http://host:70000/v1': 'not a URL',
    "http://host:9010/v1'": 'a space or a quote',
    'http://host:9010/v 1': 'a space or a quote',
}


@pytest.mark.parametrize('url', GOOD)
def test_every_caller_accepts_a_base_url(url):
    assert base_url_problem(url) == '' and base_urls_problem([url], 'server.base_urls') == ''
    assert parse_server_urls(url) == [url]
    ChatClient(ClientConfig(base_urls=(url,)))


@pytest.mark.parametrize('url, says', BAD.items())
def test_every_caller_refuses_a_bad_url_for_the_same_reason(url, says):
    assert says in base_url_problem(url)
    assert base_urls_problem(['http://ok:1/v1', url], 'server.base_urls') == (
        f'server.base_urls has {url!r}, which {base_url_problem(url)}')
    with pytest.raises(LaunchArgumentError, match='server_url') as launch:
        parse_server_urls(url)
    with pytest.raises(ValueError) as client:
        ChatClient(ClientConfig(base_urls=(url,)))
    assert says in str(launch.value) and says in str(client.value)


def test_no_base_url_is_a_problem_naming_the_setting():
    assert base_urls_problem([], 'server.base_urls').startswith('server.base_urls is empty: give at least one')
    with pytest.raises(ValueError, match='is empty'):
        ChatClient(ClientConfig(base_urls=()))


def test_split_base_urls_strips_and_drops_blanks():
    assert split_base_urls([' http://a:1/v1 ', '', '  ', 'http://b:2/v1']) == ('http://a:1/v1', 'http://b:2/v1')
